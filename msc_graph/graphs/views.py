"""What each model is shown of the conversation.

- The user simulator sees it with roles reversed (the agent speaks as ``user``), after one system
  message.
- The agent sees its system prompt, then the conversation with the text its memory design recalled
  where the design put it: on the user message it was recalled for (it stays there, so later
  requests share the prefix), or before the opening message (replaced every turn).
"""

from __future__ import annotations

from msc_graph.graphs.state import SessionState


def reversed_view(messages: list[dict]) -> list[dict]:
    """The conversation as the simulator sees it: the agent speaks as ``user``, the user as ``assistant``."""
    flip = {"assistant": "user", "user": "assistant"}
    return [{"role": flip[m["role"]], "content": m["content"]} for m in messages]


def agent_view(state: SessionState, system: str) -> list[dict]:
    """The messages the agent model is sent, with recalled text where the design put it."""
    recalls = state.get("recall_text") or []
    on_turn = {r["user_turn"]: r["text"] for r in recalls if r["placement"] == "user_turn"}
    opening = next((r["text"] for r in reversed(recalls) if r["placement"] == "opening"), "")
    out = [{"role": "system", "content": system}]
    user_turn = 0
    for i, msg in enumerate(state["messages"]):
        content = msg["content"]
        if msg["role"] == "user":
            user_turn += 1
            if user_turn in on_turn:
                content = content + on_turn[user_turn]
        elif i == 0 and opening:
            content = opening + content
        out.append({"role": msg["role"], "content": content})
    return out
