"""The state of one session graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from msc_graph.llm import merge_usage

#: How a message's role reads to chat interfaces (LangChain's message types), for Studio's chat view.
MESSAGE_TYPES = {"assistant": "ai", "user": "human"}


def said(role: str, content: str) -> dict:
    """One message of the conversation: ``{"role", "content"}``, plus the ``type`` chat views read."""
    return {"role": role, "content": content, "type": MESSAGE_TYPES[role]}


def failed_turn(role: str, turn: int, usage: dict, error: str | None, kind: str, raw: Any) -> dict:
    """The update of a user or agent turn whose call failed: the session ends with that failure."""
    from msc_graph.outcomes import failure

    return {
        "usage": usage,
        "failure": failure(role, error or "no reply", kind),  # type: ignore[arg-type]
        "turns": [{"role": role, "turn": turn, "raw": raw, "error": error}],
        "ended_by": "failure",
    }


class SessionInput(TypedDict, total=False):
    """What a caller gives a session: the user, the problem, and (memory runs) the notes so far.

    Instead of pasting the problem, name it: ``dataset`` and ``problem_index`` (from the dataset
    cache); instead of pasting the persona and preferences, name the user: ``profile_id`` (from the
    built-in profiles, or ``profiles``, a profile file).
    """

    user_id: int
    session_index: int
    problem: str
    solution: str
    task_description: str
    persona: str
    preferences: list[str]
    #: A dataset name (or file) and the index of the problem in its sample, instead of ``problem``.
    dataset: str
    problem_index: int
    #: A user id of the built-in profiles (or of ``profiles``), instead of ``persona`` and ``preferences``.
    profile_id: int
    profiles: str
    #: Memory the agent starts with; when absent, a memory design reads it from the store.
    notes: Any


class SessionState(SessionInput, total=False):
    #: The visible conversation, ``{"role", "content"}``; starts with the agent's opening line.
    messages: Annotated[list[dict], operator.add]
    #: One record per model turn: parsed fields, raw text, retrieved notes.
    turns: Annotated[list[dict], operator.add]
    #: What the memory design showed the agent with user message ``k`` (``{"user_turn": k, "notes": ...}``).
    retrieved: Annotated[list[dict], operator.add]
    #: The text of each recall as the agent saw it (``{"user_turn", "text", "placement"}``); not recorded.
    recall_text: Annotated[list[dict], operator.add]
    user_turns: int
    draft_answer: str
    terminated: bool
    ended_by: str
    verdict: dict | None
    task_success: int | None
    usage: Annotated[dict, merge_usage]
    failure: dict | None
    #: The memory the session started and ended with (designs that learn): any JSON value.
    notes_before: Any
    notes_after: Any
    reflection: dict | None
