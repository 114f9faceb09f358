"""Per-session metrics: Task Success, User Effort and Length, and which preferences were enforced.

- ``task_success``: the judge's accuracy (0/1) for the final draft answer; ``None`` when the
  session failed before or during judging (such sessions are excluded from averages, and counted).
- ``user_effort``: user turns with ``enforce_preferences`` true.
- ``length``: messages in the session, counting the agent's opening and the final user message
  (the published definition).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from msc_graph.schemas import coerce_bool


def user_effort(turns: list[dict]) -> int:
    """User turns that enforced a preference."""
    return sum(1 for t in turns if t.get("role") == "user" and enforced(t))


def enforced(turn: dict) -> bool:
    """Whether a user turn enforced a preference (its ``enforce_preferences``, read as a boolean)."""
    return coerce_bool(turn.get("enforce_preferences")) is True


def session_metrics(state: dict, count_effort: Callable[[list[dict]], int] = user_effort) -> dict:
    """The three metrics of one finished session state; ``count_effort`` is the protocol's count
    (``msc_graph.protocols.effort_counter``)."""
    failed = bool(state.get("failure"))
    return {
        "task_success": None if failed else state.get("task_success"),
        "user_effort": count_effort(state.get("turns") or []),
        "length": len(state.get("messages") or []),
    }


_VIOLATION = re.compile(
    r"^\s*(no|not|false|unsatisfied)\b|\b(not satisf\w*|is not|isn't|does not|doesn't|did not|didn't|violat\w*|"
    r"fails?|failed|missing|lacks?|broken|unsatisfied|ignored?|without)\b",
    re.IGNORECASE,
)


def preference_violated(check: str | bool | None) -> bool:
    """Read a ``preference_<i>_satisfied`` check: the simulator writes a sentence, not a boolean."""
    if isinstance(check, bool):
        return not check
    return bool(check) and bool(_VIOLATION.search(str(check)))


def enforced_preferences(record: dict) -> list[int]:
    """Indices (0-based) of the preferences the user enforced in a session.

    A preference counts as enforced when a user turn has ``enforce_preferences`` true and its check
    for that preference reads as a violation. This is a text heuristic over the simulator's own
    words; turns that enforce without a readable check are not attributed to any preference.
    """
    n = len(record.get("preferences") or [])
    found: set[int] = set()
    for turn in record.get("turns") or []:
        if turn.get("role") != "user" or not enforced(turn):
            continue
        for i in range(n):
            if preference_violated(turn.get(f"preference_{i + 1}_satisfied")):
                found.add(i)
    return sorted(found)
