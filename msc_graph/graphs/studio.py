"""The graphs ``langgraph.json`` serves to LangGraph Studio (``langgraph dev``).

Compiled without a checkpointer or store: the server brings its own. Settings (endpoints, models,
memory design, max turns, ...) are the run's context, which Studio shows as a form with a
description for each field; API keys come from the environment (see ``.env.example``).

- ``session``: one conversation, no memory by default.
- ``session_with_memory``: the same graph with retrieval memory on by default.
- ``user_run``: one user's sessions in order, memory carried from session to session.

``langgraph.json`` points at the ``serve_*`` factories: the server drops context keys its form does
not know before a graph sees them, so a mistyped key would silently fall back to a default
endpoint; each factory sees the caller's context first and refuses an unknown key by name.
"""

from __future__ import annotations

from typing import Any

from langgraph.pregel import Pregel

from msc_graph.config import SessionContext
from msc_graph.graphs.context import MemorySessionContext, StudioContext, parse_context
from msc_graph.graphs.session import build_session_graph
from msc_graph.graphs.user_run import build_user_run_graph

session = build_session_graph(StudioContext).compile(name="session")
session_with_memory = build_session_graph(MemorySessionContext).compile(name="session_with_memory")
user_run = build_user_run_graph(MemorySessionContext).compile(name="user_run")


def _checked(graph: Pregel, schema: type[SessionContext], runtime: Any) -> Pregel:
    context = getattr(runtime, "context", None)
    if isinstance(context, dict) and context:
        parse_context(context, schema)  # ContextError: "unknown context key 'x'; the known keys are: ..."
    return graph


def serve_session(runtime: ServerRuntime) -> Pregel:  # noqa: F821 - the server resolves the name
    return _checked(session, StudioContext, runtime)


def serve_session_with_memory(runtime: ServerRuntime) -> Pregel:  # noqa: F821
    return _checked(session_with_memory, MemorySessionContext, runtime)


def serve_user_run(runtime: ServerRuntime) -> Pregel:  # noqa: F821
    return _checked(user_run, MemorySessionContext, runtime)


__all__ = ["serve_session", "serve_session_with_memory", "serve_user_run", "session", "session_with_memory", "user_run"]
