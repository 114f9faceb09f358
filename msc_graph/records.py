"""The result record of one session (one typed model, one JSON line on disk) and its key.

The on-disk format is the JSON of :class:`SessionRecord` (fields in this order; the memory fields
only in runs whose memory design learns). Files written by earlier versions read as they are:
unknown fields are kept, and a failure without a ``kind`` is classified from its reason.

A record's key (:class:`RecordKey`, made by :func:`record_key`) names the session it is the result
of. In one file the last record of a key is the one that counts (a failed attempt run again is
superseded): :func:`latest_by_key` is that rule, for resume, merge, the report and rescore alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from msc_graph.outcomes import EndedBy, FailureKind, FailureStage


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


class RecordKey(NamedTuple):
    """Which session a record is the result of: the setting (its hash and dataset), the user, and
    the session's place in the user's series. Two records of one key are two attempts at it."""

    settings_hash: str | None
    dataset: str | None
    user_id: int
    session_index: int
    #: Which of ``--trials N`` runs of the session (0 when a record has none).
    trial: int = 0


def record_key(record: SessionRecord | Mapping[str, Any]) -> RecordKey:
    """The key of a record, typed or as read from a file."""
    if isinstance(record, Mapping):
        return RecordKey(*(record.get(name) for name in RecordKey._fields[:-1]), record.get("trial", 0))
    return RecordKey(*(getattr(record, name) for name in RecordKey._fields))


R = TypeVar("R", SessionRecord, Mapping[str, Any])


def latest_by_key(records: Iterable[R]) -> dict[RecordKey, R]:
    """The record that counts for each key: the last one written (in file order)."""
    out: dict[RecordKey, R] = {}
    for r in records:
        out[record_key(r)] = r
    return out
