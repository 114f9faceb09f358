"""One user's sessions in order: the multi-session part of the benchmark as a graph.

```
START -> run_session -> run_session -> ... -> END      (one step per problem)
```

Each step runs the session graph as a subgraph for the next problem, with the same context, and
keeps a short summary (metrics, failure, notes after). With a memory design that learns, the
memory a session ends with is handed to the next one, as the batch runner does; the learn node
also writes it to the user's store. A person in the user's seat (``user_kind="human"``) pauses the
subgraph with ``interrupt()``; resuming this graph resumes the session where it stopped.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from msc_graph.config import SessionContext
from msc_graph.graphs.context import MemorySessionContext, context_of
from msc_graph.graphs.memory import design_for
from msc_graph.graphs.session import graph as session_graph
from msc_graph.metrics import session_metrics
from msc_graph.protocols import effort_counter


class Problem(TypedDict, total=False):
    problem: str
    solution: str


class UserRunInput(TypedDict, total=False):
    user_id: int
    persona: str
    preferences: list[str]
    task_description: str
    #: The problems of this user's sessions, in order.
    problems: list[Problem]
    #: Memory to start from; when absent, a memory design reads it from the user's store.
    notes: Any


class UserRunState(UserRunInput, total=False):
    next_session: int
    #: One summary per finished session: index, metrics, failure, transcript, notes after.
    sessions: Annotated[list[dict], operator.add]


async def run_session(state: UserRunState, runtime: Runtime[SessionContext]) -> dict:
    ctx = context_of(runtime)
    index = state.get("next_session", 0)
    problem = state["problems"][index]
    inputs = {
        "user_id": state.get("user_id", 0),
        "session_index": index,
        "problem": problem["problem"],
        "solution": problem.get("solution", ""),
        "task_description": state.get("task_description", ""),
        "persona": state.get("persona", ""),
        "preferences": state.get("preferences") or [],
    }
    learning = design_for(ctx).learns
    if learning and state.get("notes") is not None:
        inputs["notes"] = state["notes"]
    result = await session_graph.ainvoke(inputs, context=ctx)
    summary = {
        "session_index": index,
        **session_metrics(result, effort_counter(ctx.protocol)),
        "failure": result.get("failure"),
        "draft_answer": result.get("draft_answer"),
        "transcript": result.get("messages") or [],
    }
    update: dict = {"next_session": index + 1}
    if learning:
        after = result.get("notes_after")
        summary["notes_before"] = result.get("notes_before") or []
        summary["notes_after"] = summary["notes_before"] if after is None else after
        if state.get("notes") is not None:
            update["notes"] = summary["notes_after"]
    update["sessions"] = [summary]
    return update


async def after_session(state: UserRunState) -> str:
    return "run_session" if state.get("next_session", 0) < len(state.get("problems") or []) else END


def build_user_run_graph(context_schema: type[SessionContext] = MemorySessionContext) -> StateGraph:
    builder = StateGraph(UserRunState, context_schema=context_schema, input_schema=UserRunInput)
    builder.add_node("run_session", run_session)
    builder.add_conditional_edges(START, after_session, ["run_session", END])
    builder.add_conditional_edges("run_session", after_session, ["run_session", END])
    return builder
