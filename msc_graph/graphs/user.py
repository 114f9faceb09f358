"""The user-simulator node: an LLM (or, with ``user_kind="human"``, a person) plays the user."""

from __future__ import annotations

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from msc_graph.config import SessionContext
from msc_graph.graphs import published
from msc_graph.graphs.context import context_of, role_configs
from msc_graph.graphs.state import SessionState, failed_turn, said
from msc_graph.graphs.views import reversed_view
from msc_graph.llm import call_json
from msc_graph.prompts import TERMINATION_SIGNAL, user_system_prompt
from msc_graph.schemas import user_turn_model


def is_termination(response: str, should_terminate: bool) -> bool:
    return bool(should_terminate) or TERMINATION_SIGNAL in response


async def simulate_user(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    ctx = context_of(runtime)
    if ctx.user_kind == "human":
        return human_turn(state)
    if ctx.protocol == "published":
        return await published.user_turn(state, ctx)
    cfg = role_configs(ctx)["user"]
    prefs = state.get("preferences") or []
    system = user_system_prompt(
        state.get("task_description", ""), state["problem"], state.get("persona", ""), prefs
    )
    messages = [{"role": "system", "content": system}, *reversed_view(state["messages"])]
    result = await call_json(cfg, messages, user_turn_model(len(prefs)))
    usage = {"user": result.usage.as_dict()}
    turn_index = state.get("user_turns", 0) + 1
    if not result.ok:
        return failed_turn("user", turn_index, usage, result.error, result.kind, result.raw)
    parsed = result.value
    response = parsed.response.strip() or "..."
    return {
        "usage": usage,
        "messages": [said("user", response)],
        "turns": [{"role": "user", "turn": turn_index, **parsed.model_dump(), "raw": result.raw[-1], "usage": usage["user"]}],
        "user_turns": turn_index,
        "draft_answer": parsed.draft_answer,
        "terminated": is_termination(response, parsed.should_terminate),
    }


def human_turn(state: SessionState) -> dict:
    """Pause the graph and wait for a person's message (resume with ``Command(resume=...)``).

    The resume value is a string, or a dict with ``response`` and optionally ``draft_answer``,
    ``end`` (bool) and ``enforce_preferences`` (bool).
    """
    last_agent = next((m["content"] for m in reversed(state["messages"]) if m["role"] == "assistant"), "")
    answer = interrupt(
        {
            "kind": "user_turn",
            "agent_message": last_agent,
            "problem": state.get("problem", ""),
            "draft_answer": state.get("draft_answer", "I don't know"),
            "hint": "reply with text, or {response, draft_answer, end, enforce_preferences}",
        }
    )
    if isinstance(answer, str):
        answer = {"response": answer}
    response = str(answer.get("response", "")).strip()
    end = bool(answer.get("end")) or TERMINATION_SIGNAL in response
    draft = str(answer.get("draft_answer") or state.get("draft_answer") or "I don't know")
    turn_index = state.get("user_turns", 0) + 1
    return {
        "messages": [said("user", response or TERMINATION_SIGNAL)],
        "turns": [
            {
                "role": "user",
                "turn": turn_index,
                "human": True,
                "response": response,
                "draft_answer": draft,
                "should_terminate": end,
                "enforce_preferences": bool(answer.get("enforce_preferences", False)),
            }
        ],
        "user_turns": turn_index,
        "draft_answer": draft,
        "terminated": end,
    }
