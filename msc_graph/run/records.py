"""A session to run (:class:`SessionJob`) and its record made from the graph's final state (the
record model itself, its key and the rule of which record counts live in ``msc_graph/records.py``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from msc_graph.data import UserProfile
from msc_graph.metrics import session_metrics
from msc_graph.protocols import effort_counter
from msc_graph.records import SessionRecord

__all__ = ["SessionJob", "SessionRecord", "build_record", "failed_record", "record_base"]


@dataclass
class SessionJob:
    """One session to run: a user, the position in the user's series, and the problem; under
    ``--trials N`` also which trial (0..N-1) and the sampling seed its requests carry (None: none,
    as trial 0 always sends none, so a one-trial run sends what it always sent)."""

    profile: UserProfile
    session_index: int
    problem_id: int
    problem: dict
    trial: int = 0
    seed: int | None = None


def record_base(job: SessionJob, setting: dict) -> dict:
    """The fields every record of a run shares, plus who and what."""
    extra = {k: v for k, v in job.problem.items() if k not in ("problem", "solution")}
    return {
        **setting,
        "user_id": job.profile.i,
        "session_index": job.session_index,
        **({"trial": job.trial} if job.trial else {}),
        "problem_id": job.problem_id,
        "problem": job.problem["problem"],
        "solution": job.problem["solution"],
        "persona": job.profile.persona,
        "preferences": job.profile.preferences,
        "categories": job.profile.categories,
        **({"problem_fields": extra} if extra else {}),
    }


def build_record(
    job: SessionJob, state: dict, setting: dict, started: float, memory: bool, protocol: str = "ours"
) -> SessionRecord:
    """The record of a session from its final graph state (User Effort counted as ``protocol`` counts it)."""
    values: dict[str, Any] = {
        **record_base(job, setting),
        "transcript": [{"role": m["role"], "content": m["content"]} for m in state.get("messages") or []],
        "turns": state.get("turns") or [],
        "draft_answer": state.get("draft_answer"),
        "verdict": state.get("verdict"),
        "ended_by": state.get("ended_by") or ("failure" if state.get("failure") else None),
        **session_metrics(state, effort_counter(protocol)),
        "usage": state.get("usage") or {},
        "timing": {
            "start": datetime.fromtimestamp(started, UTC).isoformat(),
            "wall_s": round(time.time() - started, 3),
        },
        "failure": state.get("failure"),
    }
    if memory:
        before = state.get("notes_before")
        before = [] if before is None else before
        after = state.get("notes_after")
        values.update(
            notes_before=before,
            notes_after=before if after is None else after,
            retrieved=state.get("retrieved") or [],
            reflection=state.get("reflection"),
        )
    return SessionRecord.model_validate(values)


def failed_record(
    job: SessionJob, setting: dict, started: float, failure: dict, memory: bool, notes: Any
) -> SessionRecord:
    """The record of a session that stopped outside the graph (a bug, a store error)."""
    state = {"failure": failure, "messages": [], "turns": [], "notes_before": notes}
    return build_record(job, state, setting, started, memory)
