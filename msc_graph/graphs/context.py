"""The graphs' runtime context: the :class:`~msc_graph.config.SessionContext` of a run.

API keys are not context fields: they come from the environment (``MSC_USER_API_KEY`` etc., or
``OPENAI_API_KEY``), or from the runner, which hands them over through :func:`set_api_keys`
without putting them in any state or record.
"""

from __future__ import annotations

from functools import lru_cache

from langgraph.runtime import Runtime
from pydantic import Field, ValidationError

from msc_graph.config import (
    MEMORY_HELP,
    ROLES,
    RoleConfig,
    SessionContext,
    agent_replies_in_json,
    role_config_of,
)
from msc_graph.memory.registry import DESIGNS

_API_KEYS: dict[str, str] = {}


def _design_choices(schema: dict) -> None:
    """Studio's form lists the built-in memory designs (a plug-in name is typed in)."""
    schema["examples"] = list(DESIGNS)
    schema["description"] = f"memory design: {' | '.join(DESIGNS)}, or package.module:factory (a plug-in)"


class StudioContext(SessionContext):
    """The session context as Studio's form shows it: the memory designs listed. Keys from the
    server's environment go only to the endpoints configured beside them (``.env.example``)."""

    memory: str = Field("none", description=MEMORY_HELP, json_schema_extra=_design_choices)


class MemorySessionContext(StudioContext):
    """The same settings with retrieval memory on by default (the ``session_with_memory`` graph)."""

    memory: str = Field("retrieval", description=MEMORY_HELP, json_schema_extra=_design_choices)


class ContextError(ValueError):
    """A context given as a mapping (Studio, the SDK) does not validate; the message names the key."""


def set_api_keys(keys: dict[str, str | None]) -> None:
    """Keys given on the command line, per role; kept in this process only."""
    for role, key in keys.items():
        if key:
            _API_KEYS[role] = key
    role_configs.cache_clear()


def parse_context(data: dict | None, schema: type[SessionContext] = SessionContext) -> SessionContext:
    """A context from a mapping; an unknown key or a bad value is a :class:`ContextError` naming it."""
    try:
        return schema.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "context"
        if first["type"] == "extra_forbidden":
            raise ContextError(
                f"unknown context key {where!r}; the known keys are: {', '.join(schema.known_keys())}"
            ) from None
        raise ContextError(f"context {where}: {first['msg']}") from None


def context_of(runtime: Runtime) -> SessionContext:
    """The run's context; a plain mapping (from an API client) is validated into a ``SessionContext``."""
    ctx = runtime.context
    if ctx is None:
        return SessionContext()
    if isinstance(ctx, dict):
        return parse_context(ctx)
    return ctx


@lru_cache(maxsize=64)
def role_configs(ctx: SessionContext) -> dict[str, RoleConfig]:
    """What each role's model calls need (endpoint, sampling, the transport block, its key). A
    context from Studio's form sends environment keys only to the endpoints configured beside them."""
    scoped = isinstance(ctx, StudioContext)
    return {role: role_config_of(ctx, role, _API_KEYS.get(role), scoped) for role in ROLES}


__all__ = [
    "ContextError",
    "MemorySessionContext",
    "SessionContext",
    "StudioContext",
    "agent_replies_in_json",
    "context_of",
    "parse_context",
    "role_configs",
    "set_api_keys",
]
