"""Resuming a run (pure): what is done, what runs again, what is refused, what memory to restore.

A results file is append-only. Records are keyed by (user, session index, trial) under one
settings hash (a record without ``trial`` is trial 0); when a key has several records (a failed
attempt, then a rerun) the last one in the file is the one that counts, and the earlier ones are
*superseded*.

- A finished session is done. A failed one runs again when ``--retry-failed`` selects it:
  ``infra`` (the default) retries infrastructure failures (the server, not the session) and judge
  failures (the grade, not the session), ``all`` every failure, ``none`` nothing.
- A user whose memory design learns runs in order: from its first session that is not done to its
  last, later sessions included (they ran with memory that the rerun replaces), starting from the
  memory its previous session ended with. Under ``--trials N`` each trial of a user is such a
  series of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from msc_graph.config import RetryFailed, settings_hash
from msc_graph.records import latest_by_key
from msc_graph.run.errors import RunError
from msc_graph.run.records import SessionJob


@dataclass
class ResumePlan:
    #: The records that count, by key (user, session index, trial), for the sessions that will not run again.
    done: dict[tuple[int, int, int], dict] = field(default_factory=dict)
    #: The sessions to run, per user, in order (under ``--trials``, trial by trial).
    todo: dict[int, list[SessionJob]] = field(default_factory=dict)
    #: The memory each learning user's store must hold when the run starts, per (user, trial) (None: nothing yet).
    restore: dict[tuple[int, int], Any] = field(default_factory=dict)
    #: Failed sessions that run again, and finished ones that run again after them (memory).
    retried: int = 0
    rerun_after_retry: int = 0

    @property
    def skipped(self) -> int:
        return len(self.done)


def latest_of_setting(records: Iterable[dict], key_hash: str) -> dict[tuple[int, int, int], dict]:
    """The record that counts for each (user, session, trial) of this setting (``records.latest_by_key``)."""
    return {
        (k.user_id, k.session_index, k.trial): r
        for k, r in latest_by_key(records).items()
        if k.settings_hash == key_hash
    }


#: What results began to be keyed by after they were first written (the profile set, a dataset's
#: content, the published texts, a memory design's own parameters): results made before carry a
#: hash without them.
CONTENT_KEYED = ("profile_set", "dataset_content", "published_texts", "memory_parameters")


def earlier_key(records: list[dict], payload: dict, key_hash: str, jobs: dict[int, list[SessionJob]]) -> tuple[dict, str] | None:
    """The key that results made before :data:`CONTENT_KEYED` keyed anything carry, when every record
    of ``records`` is provably this run's: its hash is this run's without those items, and each
    record's profile and problem are the ones this run gives that user and session. Such a file
    resumes under its own key (as it was made); ``None`` when there is nothing to adopt."""
    earlier = {k: v for k, v in payload.items() if k not in CONTENT_KEYED}
    if not records or earlier == payload:
        return None
    earlier_hash = settings_hash(earlier)
    if {r.get("settings_hash") for r in records} != {earlier_hash}:
        return None
    problems = {(uid, j.session_index): j.problem.get("problem") for uid, js in jobs.items() for j in js}
    if any(problems.get((r["user_id"], r["session_index"]), r.get("problem")) != r.get("problem") for r in records):
        return None
    return earlier, earlier_hash


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
    latest = latest_of_setting(records, key_hash)
    plan = ResumePlan()
    for uid, user_jobs in jobs.items():
        pending: list[SessionJob] = []
        for trial in dict.fromkeys(j.trial for j in user_jobs):  # each trial is a series of its own
            series = [j for j in user_jobs if j.trial == trial]
            pending += _plan_series(plan, latest, uid, trial, series, learns, retry_failed)
        if pending:
            plan.todo[uid] = pending
    return plan


def _plan_series(
    plan: ResumePlan, latest: dict, uid: int, trial: int, series: list[SessionJob], learns: bool, retry_failed: RetryFailed
) -> list[SessionJob]:
    """One user's series of one trial: fills ``plan.done``/``restore``/counts, returns what runs."""
    finished = [(j, latest.get((uid, j.session_index, trial))) for j in series]
    pending = [j for j, r in finished if r is None or should_retry(r, retry_failed)]
    plan.retried += sum(1 for j, r in finished if r is not None and should_retry(r, retry_failed))
    if learns and pending:
        first = pending[0].session_index
        rerun = [j for j, r in finished if j.session_index > first and r is not None and j not in pending]
        plan.rerun_after_retry += len(rerun)
        pending = [j for j in series if j.session_index >= first]
        previous = latest.get((uid, first - 1, trial))
        plan.restore[(uid, trial)] = (previous or {}).get("notes_after")
    elif learns:
        last = latest.get((uid, series[-1].session_index, trial)) if series else None
        plan.restore[(uid, trial)] = (last or {}).get("notes_after")
    todo_keys = {j.session_index for j in pending}
    for j, r in finished:
        if r is not None and j.session_index not in todo_keys:
            plan.done[(uid, j.session_index, trial)] = r
    return pending
