"""The conversation graph of one session.

```
START -> start -> simulate_user -> [retrieve_notes | select_notes] -> respond -> simulate_user ...
                        |  user terminates                               |  max_turns reached
                        v                                                v
                      judge  -> [reflect] -> END        (a failed call ends the session at once)
```

The session opens with the agent saying "How can I help you?". It ends when the user terminates
(``should_terminate`` or the TERMINATE signal) or after ``max_turns`` user turns; as in the
published loop, the agent still answers the last user turn when the cap is reached, so Length is
comparable with the published numbers. The memory mode in the context chooses the memory nodes.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from msc_graph.config import OPENING_MESSAGE
from msc_graph.graphs.agent import respond
from msc_graph.graphs.context import SessionContext, context_of
from msc_graph.graphs.judge import judge
from msc_graph.graphs.state import SessionInput, SessionState
from msc_graph.graphs.user import simulate_user
from msc_graph.memory.nodes import LEARNING_MODES, load_notes, reflect, retrieve_notes, select_notes


async def start(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """Open the conversation and, for memory modes that learn, load the user's notes."""
    ctx = context_of(runtime)
    update: dict = {}
    if not state.get("messages"):
        update["messages"] = [{"role": "assistant", "content": OPENING_MESSAGE}]
    update.update(user_turns=state.get("user_turns", 0), draft_answer="I don't know", terminated=False, failure=None)
    if ctx.memory in LEARNING_MODES:
        update.update(await load_notes(state, runtime))
    return update


# The routers are coroutines: LangGraph runs a plain function in a worker thread, one thread hop
# per routing decision.
async def after_user(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    ctx = context_of(runtime)
    if state.get("failure"):
        return END
    if state.get("terminated"):
        return "judge"
    if ctx.memory == "retrieval":
        return "retrieve_notes"
    if ctx.memory == "select":
        return "select_notes"
    return "respond"


async def after_agent(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    ctx = context_of(runtime)
    if state.get("failure"):
        return END
    if state.get("user_turns", 0) >= ctx.max_turns:
        return "judge"
    return "simulate_user"


async def after_judge(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    """Reflect only on a session that finished: a failed session (judge included) leaves the notes as they were."""
    ctx = context_of(runtime)
    if ctx.memory in LEARNING_MODES and not state.get("failure"):
        return "reflect"
    return END


def build_session_graph(context_schema: type[SessionContext] = SessionContext) -> StateGraph:
    """The session graph, uncompiled; ``context_schema`` sets the defaults Studio shows in its form."""
    builder = StateGraph(SessionState, context_schema=context_schema, input_schema=SessionInput)
    builder.add_node("start", start)
    builder.add_node("simulate_user", simulate_user)
    builder.add_node("retrieve_notes", retrieve_notes)
    builder.add_node("select_notes", select_notes)
    builder.add_node("respond", respond)
    builder.add_node("judge", judge)
    builder.add_node("reflect", reflect)
    builder.add_edge(START, "start")
    builder.add_edge("start", "simulate_user")
    builder.add_conditional_edges(
        "simulate_user", after_user, ["judge", "retrieve_notes", "select_notes", "respond", END]
    )
    builder.add_edge("retrieve_notes", "respond")
    builder.add_edge("select_notes", "respond")
    builder.add_conditional_edges("respond", after_agent, ["judge", "simulate_user", END])
    builder.add_conditional_edges("judge", after_judge, ["reflect", END])
    builder.add_edge("reflect", END)
    return builder


builder = build_session_graph()
graph = builder.compile(name="session")
