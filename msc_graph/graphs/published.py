"""The session's steps under ``--protocol published``: the user, agent and judge turns as the
published code takes them (its prompts, read from the published code; its parsing, termination,
counting and grading rules, ``msc_graph.protocols.published``).

The graph is the same graph; ``user.py``, ``agent.py`` and ``judge.py`` hand their turn to these
functions when the context's protocol is ``published``.
"""

from __future__ import annotations

from msc_graph.config import SessionContext, agent_replies_in_json
from msc_graph.graphs.context import role_configs
from msc_graph.graphs.state import SessionState, failed_turn, said
from msc_graph.graphs.views import reversed_view
from msc_graph.outcomes import failure
from msc_graph.protocols import published as rules
from msc_graph.protocols.published import reply_with_keys
from msc_graph.protocols.published_source import load_published


async def user_turn(state: SessionState, ctx: SessionContext) -> dict:
    texts = load_published(ctx.published_code)
    system = texts.templates["user_system_prompt_profile_with_preferences"].format(
        user_persona=state.get("persona", ""),
        user_task_description=state.get("task_description", ""),
        problem=state["problem"],
        user_preferences=rules.numbered(state.get("preferences") or []),
        termination_signal=texts.termination_signal,
    )
    got = await reply_with_keys(role_configs(ctx)["user"], [{"role": "system", "content": system}, *reversed_view(state["messages"])], rules.USER_KEYS)
    turn = state.get("user_turns", 0) + 1
    usage = {"user": got.usage.as_dict()}
    if got.error is None:
        try:
            ended = rules.terminates(got.value["response"], texts.termination_signal)
        except rules.Unusable as exc:
            got.error = str(exc)
    if got.error is not None:
        return failed_turn("user", turn, usage, got.error, got.kind, got.raw)
    return {
        "usage": usage,
        "messages": [said("user", str(got.value["response"]))],
        "turns": [{**got.value, "role": "user", "turn": turn, "raw": got.raw[-1], "usage": usage["user"]}],
        "user_turns": turn,
        "draft_answer": got.value["draft_answer"],
        "terminated": ended,
    }


def system_prompt(ctx: SessionContext, notes: str) -> str:
    """The published agent prompt: with the notes document when there is one (by truthiness)."""
    t = load_published(ctx.published_code).templates
    json_mode = agent_replies_in_json(ctx)
    if notes:
        name = "reflective_agent_system_prompt" if json_mode else "reflective_agent_system_prompt_no_json"
    else:
        name = "agent_system_prompt" if json_mode else "agent_system_prompt_no_json"
    return t[name].format(max_new_tokens=ctx.agent_max_tokens, agent_notes=notes)


async def agent_turn(state: SessionState, ctx: SessionContext, view: list[dict]) -> dict:
    cfg = role_configs(ctx)["agent"]
    messages = rules.truncate(view, ctx.agent_model, ctx.agent_context_tokens - ctx.agent_max_tokens - rules.CONTEXT_MARGIN)
    if agent_replies_in_json(ctx):
        got = await reply_with_keys(cfg, messages, rules.AGENT_KEYS, agent=True)
        fields = got.value if got.error is None else {}
    else:  # the text as it came (an empty reply is sent on; null is the text "None", as published)
        got = await rules.reply_text(cfg, messages)
        fields = {"response": rules.agent_text(cfg, got.value)}
    turn = state.get("user_turns", 0)
    usage = {"agent": got.usage.as_dict()}
    if got.error is not None:
        return failed_turn("agent", turn, usage, got.error, got.kind, got.raw)
    return {
        "usage": usage,
        "messages": [said("assistant", str(fields["response"]))],
        "turns": [{**fields, "role": "agent", "turn": turn, "raw": got.raw[-1], "usage": usage["agent"]}],
    }


async def judge_turn(state: SessionState, ctx: SessionContext) -> dict:
    """One judge call, no second try; what the published code would crash on is a judge failure."""
    texts = load_published(ctx.published_code)
    ended_by = "terminate" if state.get("terminated") else "max_turns"
    try:
        draft = rules.graded_draft(state.get("turns") or [])
    except (KeyError, IndexError):
        return {"ended_by": ended_by, "task_success": None, "verdict": None,
                "failure": failure("judge", "no draft answer to grade", "content")}  # fmt: skip
    prompt = texts.templates["accuracy_prompt_qa"].format(problem=state["problem"], correct_answer=state["solution"], draft_answer=draft)
    got = await reply_with_keys(role_configs(ctx)["judge"], [{"role": "user", "content": prompt}], rules.JUDGE_KEYS, tries=1)
    update: dict = {"usage": {"judge": got.usage.as_dict()}, "draft_answer": draft, "ended_by": ended_by}
    if got.error is None:
        try:
            score = rules.accuracy(got.value)
        except (TypeError, ValueError, OverflowError):  # e.g. "yes", null, 1e999 (inf), NaN
            got.error = f"the judge's accuracy {got.value['accuracy']!r} is not an integer"
    if got.error is not None:
        update.update(verdict={"raw": got.raw, "error": got.error}, task_success=None,
                      failure=failure("judge", got.error, got.kind))  # fmt: skip
        return update
    update.update(verdict={**got.value, "accuracy": score, "raw": got.raw[-1]}, task_success=score)
    return update
