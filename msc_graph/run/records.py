"""The result record of one session: one typed model, one JSON line on disk.

The on-disk format is the JSON of :class:`SessionRecord` (fields in this order; the memory fields
only in runs whose memory design learns). Files written by earlier versions read as they are:
unknown fields are kept, and a failure without a ``kind`` is classified from its reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from msc_graph.data import UserProfile
from msc_graph.metrics import session_metrics
from msc_graph.outcomes import EndedBy, FailureKind, FailureStage
from msc_graph.protocols import effort_counter


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


class Failure(BaseModel):
    """Why a session stopped without a score."""

    model_config = ConfigDict(extra="allow")

    stage: FailureStage
    reason: str
    kind: FailureKind = "internal"

    @model_validator(mode="before")
    @classmethod
    def _classify_old(cls, data: Any) -> Any:
        """Records of earlier versions carry no ``kind``: read it from the reason."""
        if isinstance(data, dict) and "kind" not in data:
            data = {**data, "kind": legacy_kind(data.get("stage", ""), data.get("reason", ""))}
        return data


_INFRA_WORDS = ("Timeout", "timed out", "Connect", "connection", "HTTP 5", "HTTP 429", "Error code: 5", "Error code: 429",
                "RateLimit", "ServiceUnavailable", "InternalServerError", "no answer within", "not JSON", "not a chat completion")  # fmt: skip


def legacy_kind(stage: str, reason: str) -> FailureKind:
    if stage == "internal":
        return "internal"
    return "infrastructure" if any(w in reason for w in _INFRA_WORDS) else "content"


class Timing(BaseModel):
    model_config = ConfigDict(extra="allow")

    start: str
    wall_s: float


def record_key(record: dict) -> tuple[int, int, int]:
    """What one record is the result of within its setting: (user, session index, trial)."""
    return (record["user_id"], record["session_index"], record.get("trial", 0))


class SessionRecord(BaseModel):
    """One finished (or failed) session."""

    model_config = ConfigDict(extra="allow")

    # -- the setting (what a report groups by)
    dataset: str
    experiment_type: str
    memory: str
    settings_hash: str | None = None
    profile_hash: str | None = None
    agent_model: str | None = None
    user_model: str | None = None
    # -- who and what
    user_id: int
    session_index: int
    #: Which of ``--trials N`` runs of this session (written only when above 0).
    trial: int = 0
    problem_id: int
    problem: str
    solution: str
    persona: str = ""
    preferences: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    #: The problem's other fields in the dataset (math: ``level``, ``type``), when it has any.
    problem_fields: dict | None = None
    # -- what happened
    transcript: list[dict] = Field(default_factory=list)
    turns: list[dict] = Field(default_factory=list)
    draft_answer: Any = None
    verdict: dict | None = None
    ended_by: EndedBy | None = None
    task_success: int | None = None
    user_effort: int = 0
    length: int = 0
    usage: dict[str, dict] = Field(default_factory=dict)
    timing: Timing | None = None
    failure: Failure | None = None
    # -- memory designs that learn
    notes_before: Any = None
    notes_after: Any = None
    retrieved: list[dict] | None = None
    reflection: dict | None = None

    def to_json_dict(self) -> dict:
        """What goes on disk: every field that was set (memory fields only for memory runs)."""
        return self.model_dump(mode="json", exclude_unset=True)


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
