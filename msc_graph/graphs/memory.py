"""The session graph's memory nodes: they ask the run's memory design (``msc_graph.memory``).

- ``start`` (in ``session.py``) asks the design for the memory the session starts with;
- ``recall`` runs before each agent turn for designs that recall;
- ``learn`` runs after a judged session for designs that learn. A failed session does not learn:
  the memory stays as it was.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from langgraph.runtime import Runtime

from msc_graph.config import RoleConfig, SessionContext
from msc_graph.graphs.context import context_of, role_configs
from msc_graph.graphs.state import SessionState
from msc_graph.memory.access import StoreLocator
from msc_graph.memory.designs.base import DesignSettings, MemoryDesign, SessionInfo
from msc_graph.memory.registry import design_factory
from msc_graph.outcomes import failure, kind_of_exception


def store_locator(ctx: SessionContext) -> StoreLocator:
    """Where a context keeps memory."""
    return StoreLocator(
        path=ctx.memory_dir,
        url=ctx.chroma_url or None,
        namespace=ctx.memory_namespace,
        embedding_model=ctx.embedding_model,
        embedding_api_base=ctx.embedding_api_base,
    )


@lru_cache(maxsize=32)
def design_for(ctx: SessionContext) -> MemoryDesign:
    """The memory design a context names, built once per context in this process."""
    agent = role_configs(ctx)["agent"]
    settings = DesignSettings(context=ctx, agent=agent, store=store_locator(ctx), reflection=reflection_config(agent, ctx))
    return design_factory(ctx.memory)(settings)


def session_info(state: SessionState) -> SessionInfo:
    return SessionInfo(
        user_id=state.get("user_id", 0),
        session_index=state.get("session_index", 0),
        persona=state.get("persona", ""),
        preferences=tuple(state.get("preferences") or ()),
        from_store=state.get("notes") is None,
    )


async def start_memory(state: SessionState, ctx: SessionContext) -> dict:
    """The memory the session starts with (``notes_before``), for designs that learn."""
    design = design_for(ctx)
    if not design.learns:
        return {}
    memory = await design.start(session_info(state), state.get("notes"))
    return {"notes_before": memory}


async def recall(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """What the design shows the agent for the latest user message."""
    ctx = context_of(runtime)
    turn = state.get("user_turns", 0)
    try:
        got = await design_for(ctx).recall(session_info(state), _memory(state), state["messages"])
    except Exception as exc:  # noqa: BLE001 - e.g. an embeddings endpoint that is down: the session stops
        reason = f"recall failed: {type(exc).__name__}: {exc}"[:500]
        return {"failure": failure("memory", reason, kind_of_exception(exc)), "ended_by": "failure"}
    entry: dict[str, Any] = {"user_turn": turn, "notes": got.shown if got.shown is not None else []}
    if got.error:
        entry["select_error"] = got.error
    update: dict[str, Any] = {"retrieved": [entry]}
    if got.text:
        update["recall_text"] = [{"user_turn": turn, "text": got.text, "placement": got.placement}]
    if got.usage:
        update["usage"] = got.usage
    return update


async def learn(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """The memory after the session (kept by the design's store); a failed update keeps the old one."""
    ctx = context_of(runtime)
    before = _memory(state)
    try:
        got = await design_for(ctx).learn(session_info(state), before, state["messages"])
    except Exception as exc:  # noqa: BLE001 - the judged session is kept, marked failed so a rerun learns again
        reason = f"learning failed: {type(exc).__name__}: {exc}"[:500]
        return {
            "notes_after": before,
            "reflection": {"error": reason},
            "failure": failure("memory", reason, kind_of_exception(exc)),
        }
    return {"usage": got.usage, "notes_after": got.memory, "reflection": got.info}


def _memory(state: SessionState) -> Any:
    memory = state.get("notes_before")
    return memory if memory is not None else []


def reflection_config(agent: RoleConfig, ctx: SessionContext) -> RoleConfig:
    """The agent's call settings for reflection, on ``reflection_model`` (and its endpoint) when set."""
    if not ctx.reflection_model:
        return agent
    return agent.model_copy(update={"model": ctx.reflection_model, "base_url": ctx.reflection_api_base or agent.base_url})
