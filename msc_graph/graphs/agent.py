"""The agent node: the conversational agent under evaluation.

The system prompt is the first message and does not change within a session (what a memory design
adds there is fixed at session start). Text a design recalls for a turn is attached to the user
message it was recalled for and stays there, so every later request shares the earlier prefix
(what SGLang's prefix cache reuses); a design may instead put it before the opening message,
replaced every turn (the published design does).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from msc_graph.config import SessionContext
from msc_graph.graphs import published
from msc_graph.graphs.context import agent_replies_in_json, context_of, role_configs
from msc_graph.graphs.memory import design_for, session_info
from msc_graph.graphs.state import SessionState, failed_turn, said
from msc_graph.graphs.views import agent_view
from msc_graph.llm import call_json, call_text
from msc_graph.prompts import AGENT_SYSTEM_JSON, AGENT_SYSTEM_TEXT
from msc_graph.schemas import AgentReply

#: Tokens kept free besides the reply, as a safety margin for the estimate.
CONTEXT_MARGIN = 500


def agent_system_prompt(ctx: SessionContext, state: SessionState) -> str:
    design, memory = design_for(ctx), state.get("notes_before")
    if ctx.protocol == "published":
        base = published.system_prompt(ctx, design.template_notes(memory))
    elif agent_replies_in_json(ctx):
        base = AGENT_SYSTEM_JSON.format(max_tokens=ctx.agent_max_tokens)
    else:
        base = AGENT_SYSTEM_TEXT
    return base + design.system_block(memory, session_info(state))


async def respond(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    ctx = context_of(runtime)
    system = agent_system_prompt(ctx, state)
    if ctx.protocol == "published":
        return await published.agent_turn(state, ctx, agent_view(state, system))
    cfg = role_configs(ctx)["agent"]
    budget = ctx.agent_context_tokens - cfg.max_tokens - CONTEXT_MARGIN
    messages = agent_view(state, system, max(budget, 256))
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
        return failed_turn("agent", turn, usage, result.error, result.kind, result.raw)
    return {
        "usage": usage,
        "messages": [said("assistant", text)],
        "turns": [{"role": "agent", "turn": turn, **fields, "raw": result.raw[-1], "usage": usage["agent"]}],
    }
