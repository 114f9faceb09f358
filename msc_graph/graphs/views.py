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


def estimate_tokens(text: str) -> int:
    """A cheap, offline token estimate (about 4 characters a token, rounded up)."""
    return len(text) // 4 + 1


def _cost(messages: list[dict]) -> int:
    return sum(estimate_tokens(m["content"]) + 4 for m in messages)


def trim_to_budget(messages: list[dict], budget_tokens: int) -> list[dict]:
    """Keep the system prompt and the newest messages that fit in ``budget_tokens``.

    Drops the oldest messages after the system prompt first; always keeps the last message.
    """
    if not messages:
        return messages
    head, body = (messages[:1], messages[1:]) if messages[0]["role"] == "system" else ([], messages)
    used = _cost(head)
    kept: list[dict] = []
    for msg in reversed(body):
        cost = estimate_tokens(msg["content"]) + 4
        if kept and used + cost > budget_tokens:
            break
        kept.append(msg)
        used += cost
    kept.reverse()
    return head + kept


def agent_view(state: SessionState, system: str, budget_tokens: int | None = None) -> list[dict]:
    """The messages the agent model is sent, with recalled text where the design put it.

    With ``budget_tokens`` the oldest messages are trimmed to fit (``trim_to_budget``). Trimming never
    leaves the agent without what its memory recalled: when every message that carried recalled text
    is trimmed (a design that shows its notes once, on the first user message, in a long session),
    the latest such text moves onto the first user message that is kept. Nothing changes when
    nothing is trimmed, so requests keep their shared prefix until the budget is reached.
    """
    recalls = state.get("recall_text") or []
    on_turn = {r["user_turn"]: r["text"] for r in recalls if r["placement"] == "user_turn"}
    opening = next((r["text"] for r in reversed(recalls) if r["placement"] == "opening"), "")
    body: list[tuple[dict, str]] = []  # each message as sent, with the recalled text it carries
    user_turn = 0
    for i, msg in enumerate(state["messages"]):
        extra = ""
        if msg["role"] == "user":
            user_turn += 1
            extra = on_turn.get(user_turn, "")
        elif i == 0:
            extra = opening
        content = msg["content"] + extra if msg["role"] == "user" else extra + msg["content"]
        body.append(({"role": msg["role"], "content": content}, extra))
    head = [{"role": "system", "content": system}]
    full = head + [m for m, _ in body]
    if budget_tokens is None:
        return full
    kept = trim_to_budget(full, budget_tokens)
    dropped = len(full) - len(kept)
    if not dropped or any(extra for _, extra in body[dropped:]):
        return kept
    lost = next((extra for _, extra in reversed(body[:dropped]) if extra), "")
    if not lost:
        return kept
    return _carry(state["messages"], body, dropped, lost, head, budget_tokens)


def _carry(raw: list[dict], body: list[tuple[dict, str]], start: int, lost: str, head: list[dict], budget: int) -> list[dict]:
    """The newest messages from ``start`` on, with ``lost`` on the first user message among them,
    dropping more of the oldest ones while that does not fit (the last message always stays)."""
    while True:
        out = head + [m for m, _ in body[start:]]
        first_user = next((k for k in range(start, len(body)) if raw[k]["role"] == "user"), None)
        if first_user is not None:
            out[1 + first_user - start] = {"role": "user", "content": raw[first_user]["content"] + lost}
        if _cost(out) <= budget or start >= len(body) - 1:
            return out
        start += 1
