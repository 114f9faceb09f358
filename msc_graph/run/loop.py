"""A benchmark run: plan, check, lock, resume, then drive every user's sessions.

- One task per user, all scheduled at once; at most ``concurrency`` sessions in flight (a sliding
  window: a finished session frees its slot at once).
- A user whose memory design learns runs its sessions in order (session k needs the memory of
  1..k-1) and stops at a session that failed for infrastructure (a rerun continues from it); the
  sessions of other users run concurrently.
- Each finished session is appended to the output as one JSON line at once, so a crash loses at
  most the sessions in flight; rerunning the same command resumes (``resume.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from msc_graph.cache import use_cache
from msc_graph.clients import close_loop_clients, forget_loop_clients
from msc_graph.config import RunSettings
from msc_graph.data import LoadedDataset, UserProfile, load_dataset_problems
from msc_graph.extras import MissingExtra, require_for_run
from msc_graph.graphs.context import set_api_keys
from msc_graph.graphs.human import Ask, SessionAborted, TerminalPerson
from msc_graph.graphs.memory import design_for
from msc_graph.outage import OutageStop, outages
from msc_graph.outage import reset as reset_outages
from msc_graph.protocols import task_description
from msc_graph.results.files import ResultsError, manifest_path, read_records, repair_tail
from msc_graph.results.stats import aggregate
from msc_graph.run import plan
from msc_graph.run.compact import compact_results
from msc_graph.run.errors import RunError
from msc_graph.run.manifest import Manifest
from msc_graph.run.output import OutputLock, check_output_path
from msc_graph.run.preflight import preflight
from msc_graph.run.progress import Progress, banner
from msc_graph.run.records import SessionJob, SessionRecord
from msc_graph.run.resume import ResumePlan, check_compatible, earlier_key, plan_resume
from msc_graph.run.session import SessionRunner
from msc_graph.run.store import RunStore
from msc_graph.run.writer import OutputFailed, SessionWriter
from msc_graph.security import register_environment_secrets, register_secret

#: The signal that stopped the running benchmark, for the manifest (the command line sets it).
_STOPPED_BY: list[str] = []


def note_signal(name: str) -> None:
    """A signal is stopping the run: the manifest will say which."""
    _STOPPED_BY[:] = [name]


@dataclass
class RunSummary:
    output_file: str
    records: list[dict]
    new_records: int
    skipped: int
    #: finished | interrupted | outage
    ended: str = "finished"
    wall_s: float = 0.0
    notice: str = ""

    @cached_property
    def aggregate(self) -> dict:
        """TS / UE / Len with their intervals over the counted records (computed when first read)."""
        return aggregate(self.records)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if r.get("failure"))


@dataclass
class Prepared:
    """A run that passed every check and has written nothing yet."""

    settings: RunSettings
    dataset: LoadedDataset
    profiles: list[UserProfile]
    profile_source: str
    result_settings: dict
    key_hash: str
    jobs: dict[int, list[SessionJob]]
    learns: bool
    uses_store: bool
    #: What the user simulator is told about the task (the published wording under its protocol).
    task_description: str = ""

    @property
    def output(self) -> Path:
        return Path(self.settings.output_file)

    @cached_property
    def profile_hashes(self) -> dict[int, str]:
        return plan.profile_hashes(self.profiles)


async def prepare(settings: RunSettings) -> Prepared:
    """Load and plan; raise ``RunError``/``DatasetError``/``ProfileError`` (one line) on bad input."""
    check_output_path(settings.output_file)
    try:  # before any request: a missing package is one line, not a failure record per session
        require_for_run(protocol=settings.session.protocol, memory=settings.session.memory)
    except MissingExtra as exc:
        raise RunError(str(exc)) from None
    dataset = load_dataset_problems(
        settings.dataset, settings.eval_size, cache_dir=settings.session.data_dir or None, seed=settings.seed,
        allow_download=not settings.offline, split=settings.split,
    )  # fmt: skip
    profiles, source = plan.select_profiles(settings)
    payload, key_hash = plan.key_of(settings, dataset)
    settings = settings.model_copy(update={"session": settings.session.model_copy(update={"memory_namespace": key_hash})})
    design = design_for(settings.session)
    check_local_paths(settings, design.uses_store)
    task = task_description(dataset, settings.session)
    return Prepared(
        settings, dataset, profiles, source, payload, key_hash, plan.plan_jobs(settings, profiles, dataset),
        learns=design.learns, uses_store=design.uses_store, task_description=task,
    )  # fmt: skip


def adopt_earlier_key(prep: Prepared, previous: list[dict]) -> Prepared:
    """A results file made before the run's contents keyed results (``resume.earlier_key``) goes on
    under the key it was made with, memory namespace included; anything else is left as it is."""
    earlier = earlier_key(previous, prep.result_settings, prep.key_hash, prep.jobs)
    if earlier is None:
        return prep
    payload, key_hash = earlier
    session = prep.settings.session.model_copy(update={"memory_namespace": key_hash})
    return replace(prep, settings=prep.settings.model_copy(update={"session": session}), result_settings=payload, key_hash=key_hash)


def check_local_paths(settings: RunSettings, uses_store: bool) -> None:
    """Folders the run needs that are files, and a person asked for without a terminal."""
    memory_dir = Path(settings.session.memory_dir)
    if uses_store and not settings.session.chroma_url:
        for path in (memory_dir, memory_dir / ".msc-lock"):
            if path.exists() and (path.is_dir() != (path == memory_dir)):
                raise RunError(f"{path} is in the way of the memory store (a {'file' if path.is_file() else 'folder'}); "
                               "move it aside or give another --memory-dir")  # fmt: skip
    if settings.session.user_kind == "human" and (sys.stdin is None or sys.stdin.closed):
        raise RunError("--user-kind human needs a person at this terminal, but stdin is closed; run it in a terminal")


def existing_records(output: Path) -> list[dict]:
    try:
        return read_records(output, repair=False)
    except ResultsError as exc:
        raise RunError(str(exc)) from None


async def run_benchmark(
    settings: RunSettings, *, on_record: Callable[[dict], None] | None = None, person: Ask | None = None
) -> RunSummary:
    """Run (or resume) a benchmark. Raises ``RunError``/``DatasetError``/``ProfileError``/``MemoryError_``
    before any work; nothing is written or deleted then.

    With ``user_kind == "human"`` a person answers every user turn through ``person`` (default: a
    :class:`~msc_graph.graphs.human.TerminalPerson` on this terminal), one session at a time.
    """
    t0 = time.time()
    _STOPPED_BY.clear()
    forget_loop_clients()
    outage_state = reset_outages(settings.outage_timeout)
    keys = {role: key.get_secret_value() for role, key in settings.api_keys.items()}
    set_api_keys(keys)
    for key in keys.values():
        register_secret(key)
    register_environment_secrets()
    prep = await prepare(settings)
    if not settings.skip_preflight:
        await preflight(prep.settings.session)
    use_cache(settings.cache)  # (None: no cache) counted from zero for this run's manifest
    with OutputLock(prep.output) as lock:
        previous = [] if settings.overwrite else existing_records(prep.output)
        prep = adopt_earlier_key(prep, previous)
        check_compatible(previous, prep.key_hash, prep.profile_hashes, str(prep.output))
        resume = plan_resume(previous, prep.key_hash, prep.jobs, learns=prep.learns, retry_failed=settings.retry_failed)
        store = RunStore(prep.settings.session, settings.memory_in_process, settings.trials) if prep.uses_store else None
        if store is not None:
            await store.open(list(prep.jobs))  # locks the memory folder: refused at once when in use
        if settings.overwrite:  # every check passed and every lock is held: only now replace
            for path in (prep.output, manifest_path(prep.output)):
                path.unlink(missing_ok=True)
        repair_tail(prep.output)  # cut a torn final line before appending
        lock.keep_folders()
        outage_state.holding = True  # from now on a server that fails everything pauses the run
        try:
            summary = await drive(prep, resume, store, on_record, person)
        finally:
            outage_state.close()
    summary.wall_s = time.time() - t0
    return summary


def start_banner(prep: Prepared, resume: ResumePlan) -> str:
    s = prep.settings.session
    users, sessions = len(prep.jobs), len(prep.dataset)
    todo = sum(len(v) for v in resume.todo.values())
    endpoints = {f"{role}": f"{getattr(s, f'{role}_model')} at {getattr(s, f'{role}_api_base')}" for role in ("user", "agent", "judge")}
    retry = f", {resume.retried} failed to retry" if resume.retried else ""
    rerun = f", {resume.rerun_after_retry} later memory sessions rerun after them" if resume.rerun_after_retry else ""
    trials = f" x {prep.settings.trials} trials" if prep.settings.trials > 1 else ""
    return banner([
        ("run", f"{prep.settings.experiment_type} on {prep.dataset.name} ({prep.settings.split}, {sessions} problems), "
                f"memory {s.memory}, protocol {s.protocol}"),
        ("sessions", f"{users} users x {sessions}{trials} = {users * sessions * prep.settings.trials}: {resume.skipped} done, "
                     f"{todo} to run{retry}{rerun}"),
        *((k, v) for k, v in endpoints.items()),
        ("output", str(prep.output)),
    ])  # fmt: skip


async def drive(
    prep: Prepared, resume: ResumePlan, store: RunStore | None, on_record: Callable[[dict], None] | None,
    person: Ask | None,
) -> RunSummary:  # fmt: skip
    settings, ctx = prep.settings, prep.settings.session
    human = ctx.user_kind == "human"
    manifest = Manifest(prep.output, settings, prep.key_hash, prep.result_settings, prep.dataset, prep.profile_source, list(prep.jobs))
    manifest.write()
    if settings.progress:
        print(start_banner(prep, resume), file=sys.stderr, flush=True)
    runner = SessionRunner(ctx, plan.record_setting(settings, prep.dataset, prep.key_hash), prep.profile_hashes,
                           prep.task_description, prep.learns, person,
                           TerminalPerson() if human and person is None else None, settings.trials)  # fmt: skip
    total = sum(len(v) for v in prep.jobs.values())
    records = list(resume.done.values())
    progress = Progress(
        total, resume.skipped, settings.progress and not human, records,
        remaining_per_user={u: len(js) for u, js in resume.todo.items()}, in_series=prep.learns,
        concurrency=1 if human else settings.concurrency, every_s=settings.progress_every,
    )  # fmt: skip
    writer = SessionWriter(prep.output, runner, progress, records, on_record)
    users = UserDriver(runner, writer, progress, 1 if human else settings.concurrency, prep.learns)
    ended, completed = "finished", False
    ticker = asyncio.ensure_future(progress.tick())
    try:
        await users.run_all(resume, store)
        completed = True
    except (asyncio.CancelledError, SessionAborted):
        ended = f"interrupted ({_STOPPED_BY[0]})" if _STOPPED_BY else "interrupted"
    except OutageStop as exc:
        ended, writer.notice = "outage", str(exc)
    except OutputFailed:
        ended = "output error"
    finally:
        ticker.cancel()
        writer.close()
        progress.close()
        with contextlib.suppress(Exception, asyncio.CancelledError):  # closing sockets must never hide the outcome
            await close_loop_clients()
        extra = {}
        if store is not None and (errors := store.close()):
            extra["memory_write_errors"] = errors[:20]
        if completed:
            extra.update(compact_on_finish(prep.output))
        manifest.finish(ended, {"total": total, "done": len(records), "new": writer.new, "failed": sum(1 for r in records if r.get("failure"))}, **extra)
    records.sort(key=lambda r: (r["user_id"], r.get("trial", 0), r["session_index"]))
    return RunSummary(str(prep.output), records, writer.new, resume.skipped, ended, notice=writer.notice)


def compact_on_finish(output: Path) -> dict:
    """After a clean finish: drop superseded attempts from the results file (``compact.py``); what
    the manifest says about it. A file that cannot be compacted stays as it is (a warning)."""
    try:
        dropped = compact_results(output)
    except (OSError, ValueError) as exc:
        print(f"warning: {output} was not compacted ({exc}); it is complete as it is", file=sys.stderr)
        return {}
    return {"compacted": {"superseded_dropped": dropped}} if dropped else {}


class UserDriver:
    """Runs each user's sessions: in order for memory users, concurrently otherwise."""

    def __init__(self, runner: SessionRunner, writer: SessionWriter, progress: Progress, concurrency: int, learns: bool) -> None:
        self.runner, self.writer, self.progress = runner, writer, progress
        self.slots = asyncio.Semaphore(concurrency)
        self.learns = learns

    async def session(self, job: SessionJob, memory=None) -> SessionRecord:
        await outages().all_up()  # no new session while a server is down
        async with self.slots:
            self.progress.session_started()
            record = await self.runner.run(job, memory)
        return self.writer.emit(job, record)

    async def user(self, uid: int, todo: list[SessionJob], restore: dict) -> None:
        if not self.learns:
            await all_or_none(self.session(j) for j in todo)
            return
        trials = dict.fromkeys(j.trial for j in todo)  # each trial is a series of its own
        await all_or_none(self.series([j for j in todo if j.trial == t], restore.get((uid, t))) for t in trials)

    async def series(self, todo: list[SessionJob], memory) -> None:
        for job in todo:
            record = await self.session(job, memory)
            if record.failure is not None and record.failure.kind == "infrastructure":
                return  # later sessions would start from the wrong memory: a rerun continues here
            if record.notes_after is not None:
                memory = record.notes_after

    async def run_all(self, resume: ResumePlan, store: RunStore | None) -> None:
        # the records are the truth: each learning user's store gets the memory its last finished
        # session ended with (a write only where it differs, e.g. after a crash took a write with it)
        for (uid, trial), memory in resume.restore.items():
            await design_for(self.runner.context_of(trial)).restore(uid, memory)
        for trial in range(self.runner.trial_count):
            await design_for(self.runner.context_of(trial)).prepare(list(resume.todo))
        users = asyncio.ensure_future(all_or_none(self.user(uid, todo, resume.restore) for uid, todo in resume.todo.items()))
        ready = store.ready() if store is not None else None
        if ready is None:
            await users
            return
        # the store process opens the folder while the first sessions run; if it cannot, stop
        try:
            await asyncio.wait({users, ready}, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            users.cancel()
            raise
        if ready.done() and ready.exception() is not None:
            users.cancel()
            await asyncio.gather(users, return_exceptions=True)
            raise ready.exception()  # type: ignore[misc]
        await users


async def all_or_none(coros) -> None:
    """Run the coroutines concurrently; when one raises (or this is cancelled), cancel the rest and
    wait for them before raising, so no session outlives the run."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
