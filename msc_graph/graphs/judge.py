"""The judge node: grades the user's final draft answer against the reference solution."""

from __future__ import annotations

from langgraph.runtime import Runtime

from msc_graph.config import SessionContext
from msc_graph.graphs import published
from msc_graph.graphs.context import context_of, role_configs
from msc_graph.graphs.state import SessionState
from msc_graph.llm import call_json
from msc_graph.outcomes import failure
from msc_graph.prompts import JUDGE_PROMPT
from msc_graph.schemas import JudgeVerdict

NO_ANSWER = "I don't know"


def final_draft_answer(state: SessionState) -> str:
    """The draft answer of the last user turn that produced one."""
    for turn in reversed(state.get("turns") or []):
        if turn.get("role") == "user" and turn.get("draft_answer") is not None:
            return str(turn["draft_answer"])
    return state.get("draft_answer") or NO_ANSWER


async def judge(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    ctx = context_of(runtime)
    if ctx.protocol == "published":
        return await published.judge_turn(state, ctx)
    cfg = role_configs(ctx)["judge"]
    draft = final_draft_answer(state)
    prompt = JUDGE_PROMPT.format(problem=state["problem"], solution=state["solution"], draft_answer=draft)
    result = await call_json(cfg, [{"role": "user", "content": prompt}], JudgeVerdict)
    ended_by = state.get("ended_by") or ("terminate" if state.get("terminated") else "max_turns")
    update: dict = {"usage": {"judge": result.usage.as_dict()}, "draft_answer": draft, "ended_by": ended_by}
    if not result.ok:
        update.update(
            verdict={"raw": result.raw, "error": result.error},
            task_success=None,
            failure=failure("judge", result.error or "no verdict", result.kind),
        )
        return update
    verdict = result.value
    update.update(verdict={**verdict.model_dump(), "raw": result.raw[-1]}, task_success=int(verdict.accuracy))
    return update
