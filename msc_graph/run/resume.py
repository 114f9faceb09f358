"""Resuming a run (pure): what is done, what runs again, what is refused, what memory to restore.

A results file is append-only. Records are keyed by (user, session index) under one settings
hash; when a key has several records (a failed attempt, then a rerun) the last one in the file is
the one that counts, and the earlier ones are *superseded*.

- A finished session is done. A failed one runs again when ``--retry-failed`` selects it:
  ``infra`` (the default) retries infrastructure failures (the server, not the session) and judge
  failures (the grade, not the session), ``all`` every failure, ``none`` nothing.
- A user whose memory design learns runs in order: from its first session that is not done to its
  last, later sessions included (they ran with memory that the rerun replaces), starting from the
  memory its previous session ended with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from msc_graph.config import RetryFailed
from msc_graph.run.errors import RunError
from msc_graph.run.records import SessionJob


@dataclass
class ResumePlan:
    #: The records that count, by key, for the sessions that will not run again.
    done: dict[tuple[int, int], dict] = field(default_factory=dict)
    #: The sessions to run, per user, in order.
    todo: dict[int, list[SessionJob]] = field(default_factory=dict)
    #: The memory each learning user's store must hold when the run starts (None: nothing yet).
    restore: dict[int, Any] = field(default_factory=dict)
    #: Failed sessions that run again, and finished ones that run again after them (memory).
    retried: int = 0
    rerun_after_retry: int = 0

    @property
    def skipped(self) -> int:
        return len(self.done)


def latest_by_key(records: Iterable[dict], key_hash: str) -> dict[tuple[int, int], dict]:
    """The record that counts for each (user, session) of this setting: the last one written."""
    out: dict[tuple[int, int], dict] = {}
    for r in records:
        if r.get("settings_hash") == key_hash:
            out[(r["user_id"], r["session_index"])] = r
    return out


def check_compatible(records: list[dict], key_hash: str, profile_hashes: dict[int, str], output: str) -> None:
    """Refuse a results file made with other settings or for users whose profiles changed."""
    other = {r.get("settings_hash") for r in records} - {key_hash}
    if other:
        raise RunError(
            f"{output} holds results made with different settings (hash {sorted(map(str, other))[0]}, this run "
            f"{key_hash}); use another --output_file, or --overwrite to replace it"
        )
    changed = sorted(
        {r["user_id"] for r in records if r["user_id"] in profile_hashes and r.get("profile_hash") != profile_hashes[r["user_id"]]}
    )
    if changed:
        raise RunError(
            f"{output} holds results for users {changed[:5]} whose profiles have changed since; use "
            "another --output_file, or --overwrite to replace it"
        )


def should_retry(record: dict, policy: RetryFailed) -> bool:
    """Whether a rerun runs ``record``'s session again. ``infra`` retries what was not the session's
    doing: the server's failures, and a judge whose grade stayed unreadable (the session ran; its
    measurement failed, and a small judge model that misreads one draft reads another)."""
    failure = record.get("failure")
    if not failure or policy == "none":
        return False
    return policy == "all" or failure.get("kind", "internal") == "infrastructure" or failure.get("stage") == "judge"


def plan_resume(
    records: list[dict], key_hash: str, jobs: dict[int, list[SessionJob]], *, learns: bool, retry_failed: RetryFailed
) -> ResumePlan:
    latest = latest_by_key(records, key_hash)
    plan = ResumePlan()
    for uid, user_jobs in jobs.items():
        finished = [(j, latest.get((uid, j.session_index))) for j in user_jobs]
        pending = [j for j, r in finished if r is None or should_retry(r, retry_failed)]
        plan.retried += sum(1 for j, r in finished if r is not None and should_retry(r, retry_failed))
        if learns and pending:
            first = pending[0].session_index
            rerun = [j for j, r in finished if j.session_index > first and r is not None and j not in pending]
            plan.rerun_after_retry += len(rerun)
            pending = [j for j in user_jobs if j.session_index >= first]
            previous = latest.get((uid, first - 1))
            plan.restore[uid] = (previous or {}).get("notes_after")
        elif learns:
            last = latest.get((uid, user_jobs[-1].session_index)) if user_jobs else None
            plan.restore[uid] = (last or {}).get("notes_after")
        todo_keys = {j.session_index for j in pending}
        for j, r in finished:
            if r is not None and j.session_index not in todo_keys:
                plan.done[(uid, j.session_index)] = r
        if pending:
            plan.todo[uid] = pending
    return plan
