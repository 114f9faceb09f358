"""The agent node: the conversational agent under evaluation.

The system prompt is the first message and does not change within a session (memory notes and
oracle preferences are fixed at session start). Notes retrieved for a turn are attached to the
user message they were retrieved for and stay there, so every later request shares the earlier
prefix (what SGLang's prefix cache reuses).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from msc_graph.graphs.context import SessionContext, agent_replies_in_json, context_of, role_configs
from msc_graph.graphs.state import SessionState, failure
from msc_graph.llm import call_json, call_text
from msc_graph.memory.notes import notes_as_text
from msc_graph.prompts import (
    AGENT_NOTES_BLOCK,
    AGENT_ORACLE_BLOCK,
    AGENT_SYSTEM_JSON,
    AGENT_SYSTEM_TEXT,
    RETRIEVED_NOTES_BLOCK,
    format_numbered,
)
from msc_graph.schemas import AgentReply

#: Tokens kept free besides the reply, as a safety margin for the estimate.
CONTEXT_MARGIN = 500


def estimate_tokens(text: str) -> int:
    """A cheap, offline token estimate (about 4 characters a token, rounded up)."""
    return len(text) // 4 + 1


def trim_to_budget(messages: list[dict], budget_tokens: int) -> list[dict]:
    """Keep the system prompt and the newest messages that fit in ``budget_tokens``.

    Drops the oldest messages after the system prompt first; always keeps the last message.
    """
    if not messages:
        return messages
    head, body = (messages[:1], messages[1:]) if messages[0]["role"] == "system" else ([], messages)
    used = sum(estimate_tokens(m["content"]) + 4 for m in head)
    kept: list[dict] = []
    for msg in reversed(body):
        cost = estimate_tokens(msg["content"]) + 4
        if kept and used + cost > budget_tokens:
            break
        kept.append(msg)
        used += cost
    kept.reverse()
    return head + kept


def agent_system_prompt(ctx: SessionContext, state: SessionState) -> str:
    json_mode = agent_replies_in_json(ctx)
    base = AGENT_SYSTEM_JSON.format(max_tokens=ctx.agent_max_tokens) if json_mode else AGENT_SYSTEM_TEXT
    if ctx.memory == "oracle":
        return base + AGENT_ORACLE_BLOCK.format(preferences=format_numbered(state.get("preferences") or []))
    if ctx.memory == "notes":
        return base + AGENT_NOTES_BLOCK.format(notes=notes_as_text(state.get("notes_before") or []))
    return base


def agent_view(state: SessionState, system: str) -> list[dict]:
    """The messages the agent model is sent, with retrieved notes on the user turns they belong to."""
    by_turn = {r["user_turn"]: r["notes"] for r in state.get("retrieved") or [] if r.get("notes")}
    out = [{"role": "system", "content": system}]
    user_turn = 0
    for msg in state["messages"]:
        content = msg["content"]
        if msg["role"] == "user":
            user_turn += 1
            if user_turn in by_turn:
                content = content + RETRIEVED_NOTES_BLOCK.format(notes=notes_as_text(by_turn[user_turn]))
        out.append({"role": msg["role"], "content": content})
    return out


async def respond(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    ctx = context_of(runtime)
    cfg = role_configs(ctx)["agent"]
    budget = ctx.agent_context_tokens - cfg.max_tokens - CONTEXT_MARGIN
    messages = trim_to_budget(agent_view(state, agent_system_prompt(ctx, state)), max(budget, 256))
    if agent_replies_in_json(ctx):
        result = await call_json(cfg, messages, AgentReply)
        fields = result.value.model_dump() if result.ok else {}
        text = fields.get("response", "")
    else:
        result = await call_text(cfg, messages)
        text = result.value or ""
        fields = {"response": text}
    usage = {"agent": result.usage.as_dict()}
    turn = state.get("user_turns", 0)
    if not result.ok:
        return {
            "usage": usage,
            "failure": failure("agent", result.error or "no reply"),
            "turns": [{"role": "agent", "turn": turn, "raw": result.raw, "error": result.error}],
            "ended_by": "failure",
        }
    return {
        "usage": usage,
        "messages": [{"role": "assistant", "content": text}],
        "turns": [{"role": "agent", "turn": turn, **fields, "raw": result.raw[-1]}],
    }
