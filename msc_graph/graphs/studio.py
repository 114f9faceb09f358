"""The graphs ``langgraph.json`` serves to LangGraph Studio (``langgraph dev``).

Compiled without a checkpointer or store: the server brings its own. Settings (endpoints, models,
memory mode, max turns, ...) are the run's context, which Studio shows as a form; API keys come
from the environment (see ``.env.example``).

- ``session``: one conversation, no memory by default.
- ``session_with_memory``: the same graph with retrieval memory on by default.
- ``user_run``: one user's sessions in order, notes carried from session to session.
"""

from __future__ import annotations

from msc_graph.graphs.context import MemorySessionContext, StudioContext
from msc_graph.graphs.session import build_session_graph
from msc_graph.graphs.user_run import build_user_run_graph

session = build_session_graph(StudioContext).compile(name="session")
session_with_memory = build_session_graph(MemorySessionContext).compile(name="session_with_memory")
user_run = build_user_run_graph(MemorySessionContext).compile(name="user_run")

__all__ = ["session", "session_with_memory", "user_run"]
