"""The judge node: grades the user's final draft answer against the reference solution."""

from __future__ import annotations

from langgraph.runtime import Runtime

from msc_graph.config import RoleConfig, SessionContext
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
    draft = final_draft_answer(state)
    fields, usage = await grade(role_configs(ctx)["judge"], state["problem"], state["solution"], draft)
    ended_by = state.get("ended_by") or ("terminate" if state.get("terminated") else "max_turns")
    return {"usage": {"judge": usage}, "draft_answer": draft, "ended_by": ended_by, **fields}


async def grade(cfg: RoleConfig, problem: str, solution: str, draft: str) -> tuple[dict, dict]:
    """One judge call on ``draft``: the record fields it sets (``verdict``, ``task_success``, and
    ``failure`` when no usable verdict came back) and the call's usage. The session's judge node and
    ``runners/rescore.py`` both grade with it."""
    prompt = JUDGE_PROMPT.format(problem=problem, solution=solution, draft_answer=draft)
    result = await call_json(cfg, [{"role": "user", "content": prompt}], JudgeVerdict)
    if not result.ok:
        fields = {"verdict": {"raw": result.raw, "error": result.error}, "task_success": None,
                  "failure": failure("judge", result.error or "no verdict", result.kind)}  # fmt: skip
    else:
        verdict = result.value
        fields = {"verdict": {**verdict.model_dump(), "raw": result.raw[-1]}, "task_success": int(verdict.accuracy)}
    return fields, result.usage.as_dict()
