"""The state of one session graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any

from typing_extensions import TypedDict

from msc_graph.llm import merge_usage


class SessionInput(TypedDict, total=False):
    """What a caller gives a session: the user, the problem, and (memory runs) the notes so far."""

    user_id: int
    session_index: int
    problem: str
    solution: str
    task_description: str
    persona: str
    preferences: list[str]
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
