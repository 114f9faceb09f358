"""Running one session of a benchmark and turning it into its record, whatever happens.

A bug, a store error or a record that cannot be built becomes that session's failure (stage
``internal``), never the run's: the other users go on. A person in the user's seat answers through
``msc_graph.graphs.human``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from msc_graph.config import SessionContext
from msc_graph.graphs.human import Ask, SessionAborted, TerminalPerson, run_with_person
from msc_graph.graphs.session import graph as session_graph
from msc_graph.llm import sampling_seed
from msc_graph.outcomes import failure, kind_of_exception
from msc_graph.run.plan import trial_context
from msc_graph.run.records import SessionJob, SessionRecord, build_record, failed_record
from msc_graph.security import redact

#: How many times a session is generated from its start when it fails: once under our protocol;
#: under the published one three times, and with memory three times three (its memory loop wraps
#: its session loop). A failed judgement is not generated again (it has no conversation to redo).
SESSION_ATTEMPTS = {"ours": 1, "published": 3}
PUBLISHED_MEMORY_ATTEMPTS = 9
REGENERATED_STAGES = ("user", "agent", "memory", "internal")


def attempts_for(ctx: SessionContext, learns: bool) -> int:
    if ctx.protocol == "published" and learns:
        return PUBLISHED_MEMORY_ATTEMPTS
    return SESSION_ATTEMPTS.get(ctx.protocol, 1)


def session_inputs(job: SessionJob, task_description: str) -> dict:
    return {
        "user_id": job.profile.i,
        "session_index": job.session_index,
        "problem": job.problem["problem"],
        "solution": job.problem["solution"],
        "task_description": task_description,
        "persona": job.profile.persona,
        "preferences": job.profile.preferences,
    }


def briefing(job: SessionJob, task_description: str) -> str:
    """What a person playing a profile is shown at the start of a session."""
    prefs = "\n".join(f"  - {p}" for p in job.profile.preferences)
    return (
        f"=== user {job.profile.i}, session {job.session_index + 1} ===\n"
        f"You are: {job.profile.persona}\nYour preferences (remind the agent when it ignores them):\n{prefs}\n"
        f"Task: {task_description}\nProblem (the agent has not seen it):\n{job.problem['problem']}\n"
    )


@dataclass
class SessionRunner:
    ctx: SessionContext
    #: The fields naming the run's setting in every record (``plan.record_setting``).
    setting: dict
    profile_hashes: dict[int, str]
    task_description: str
    #: Whether records carry memory (the design learns).
    memory: bool
    person: Ask | None = None
    terminal: TerminalPerson | None = None
    #: ``--trials``: how many runs of every session (each trial's context: ``plan.trial_context``).
    trial_count: int = 1

    def context_of(self, trial: int) -> SessionContext:
        return trial_context(self.ctx, trial)

    def setting_for(self, job: SessionJob) -> dict:
        """The setting fields of ``job``'s record: the run's, and the user's profile hash."""
        return {**self.setting, "profile_hash": self.profile_hashes[job.profile.i]}

    async def run(self, job: SessionJob, notes: Any = None) -> SessionRecord:
        setting = self.setting_for(job)
        attempts = attempts_for(self.ctx, self.memory)
        for attempt in range(1, attempts + 1):
            started = time.time()
            record = await self._attempt(job, setting, started, notes)
            if record.failure is None or record.failure.stage not in REGENERATED_STAGES or attempt == attempts:
                break
        if attempts > 1:
            record = record.model_copy(update={"attempts": attempt})
        return record

    async def _attempt(self, job: SessionJob, setting: dict, started: float, notes: Any) -> SessionRecord:
        try:
            state = await self._play(job)
            state = _redacted_failure(state)
            return build_record(job, state, setting, started, self.memory, self.ctx.protocol)
        except (asyncio.CancelledError, SessionAborted):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug or store error is recorded, other users go on
            reason = redact(f"{type(exc).__name__}: {exc}"[:500])
            fail = failure("internal", reason, kind_of_exception(exc))
            return failed_record(job, setting, started, fail, self.memory, notes)

    async def _play(self, job: SessionJob) -> dict:
        inputs = session_inputs(job, self.task_description)
        if self.ctx.user_kind != "human":
            with sampling_seed(job.seed):
                return await session_graph.ainvoke(inputs, context=self.context_of(job.trial))
        if self.terminal is not None:
            self.terminal.start_session(briefing(job, self.task_description))
        return await run_with_person(inputs, self.context_of(job.trial), self.person or self.terminal)


def _redacted_failure(state: dict) -> dict:
    fail = state.get("failure")
    if fail and fail.get("reason"):
        state = {**state, "failure": {**fail, "reason": redact(fail["reason"])}}
    return state
