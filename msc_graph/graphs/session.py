"""The conversation graph of one session.

```
START -> start -> simulate_user -> [recall] -> respond -> simulate_user ...
                        |  user terminates                |  max_turns reached
                        v                                 v
                      judge  -> [learn] -> END        (a failed call ends the session at once)
```

The session opens with the agent saying "How can I help you?". It ends when the user terminates
(``should_terminate`` or the termination signal) or after ``max_turns`` user turns; as in the
published loop, the agent still answers the last user turn when the cap is reached, so Length is
comparable with the published numbers. The run's memory design (``msc_graph.memory``) decides
whether ``recall`` runs before agent turns and ``learn`` after the judge.
"""

from __future__ import annotations

import asyncio

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from msc_graph.config import SessionContext
from msc_graph.graphs.agent import respond
from msc_graph.graphs.context import context_of
from msc_graph.graphs.inputs import complete_input
from msc_graph.graphs.judge import judge
from msc_graph.graphs.memory import design_for, learn, recall, start_memory
from msc_graph.graphs.state import SessionInput, SessionState, said
from msc_graph.graphs.user import simulate_user
from msc_graph.prompts import OPENING_MESSAGE


async def start(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """Complete the input, open the conversation and load the memory the session starts with."""
    ctx = context_of(runtime)
    update: dict = await asyncio.to_thread(complete_input, state, ctx)  # may read a dataset file
    state = {**state, **update}
    if not state.get("messages"):
        update["messages"] = [said("assistant", OPENING_MESSAGE)]
    update.update(user_turns=state.get("user_turns", 0), draft_answer="I don't know", terminated=False, failure=None)
    update.update(await start_memory(state, ctx))
    return update


# The routers are coroutines: LangGraph runs a plain function in a worker thread, one thread hop
# per routing decision.
async def after_user(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    if state.get("failure"):
        return END
    if state.get("terminated"):
        return "judge"
    return "recall" if design_for(context_of(runtime)).recalls else "respond"


async def after_agent(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    if state.get("failure"):
        return END
    if state.get("user_turns", 0) >= context_of(runtime).max_turns:
        return "judge"
    return "simulate_user"


async def after_recall(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    """A failed recall ends a published-protocol session before the agent is called (the published
    loop makes no agent call after a failed note selection); ours lets the agent answer first."""
    if state.get("failure") and context_of(runtime).protocol == "published":
        return END
    return "respond"


async def after_judge(state: SessionState, runtime: Runtime[SessionContext]) -> str:
    """Learn only from a session that finished: a failed session leaves memory as it was. Under the
    published protocol a failed judgement does not stop learning (the published loop updates the
    notes before any session is judged)."""
    ctx = context_of(runtime)
    fail = state.get("failure")
    judged_only = ctx.protocol == "published" and bool(fail) and fail.get("stage") == "judge"
    if design_for(ctx).learns and (not fail or judged_only):
        return "learn"
    return END


def build_session_graph(context_schema: type[SessionContext] = SessionContext) -> StateGraph:
    """The session graph, uncompiled; ``context_schema`` sets the defaults Studio shows in its form."""
    builder = StateGraph(SessionState, context_schema=context_schema, input_schema=SessionInput)
    builder.add_node("start", start)
    builder.add_node("simulate_user", simulate_user)
    builder.add_node("recall", recall)
    builder.add_node("respond", respond)
    builder.add_node("judge", judge)
    builder.add_node("learn", learn)
    builder.add_edge(START, "start")
    builder.add_edge("start", "simulate_user")
    builder.add_conditional_edges("simulate_user", after_user, ["judge", "recall", "respond", END])
    builder.add_conditional_edges("recall", after_recall, ["respond", END])
    builder.add_conditional_edges("respond", after_agent, ["judge", "simulate_user", END])
    builder.add_conditional_edges("judge", after_judge, ["learn", END])
    builder.add_edge("learn", END)
    return builder


builder = build_session_graph()
graph = builder.compile(name="session")
