"""Planning a run (pure functions): which users, which problems for each, in which order, and the
settings that key a record (``settings_hash``)."""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path

from msc_graph.config import RunSettings, SessionContext, settings_hash
from msc_graph.data import LoadedDataset, UserProfile, builtin_profiles, load_profiles
from msc_graph.data.profiles import BUILTIN_PROFILE_SET, ProfileError, profile_set_digest
from msc_graph.memory.registry import design_keys
from msc_graph.prompts import PROMPTS_VERSION
from msc_graph.protocols.published_source import PUBLISHED_TEXTS, load_published
from msc_graph.run.errors import RunError
from msc_graph.run.records import SessionJob
from msc_graph.spec import declared_settings


def profile_source(settings: RunSettings) -> tuple[list[UserProfile], str]:
    """The whole profile set a run draws its users from, and where it comes from."""
    if settings.profiles:
        return load_profiles(settings.profiles), str(Path(settings.profiles).resolve())
    wanted = max(100, (max(settings.user_ids) + 1) if settings.user_ids else 0, settings.users or 0)
    return builtin_profiles(wanted), "builtin"


def select_profiles(settings: RunSettings) -> tuple[list[UserProfile], str]:
    """The users of this run and where they come from."""
    profiles, source = profile_source(settings)
    if settings.user_ids:
        by_id = {p.i: p for p in profiles}
        missing = [i for i in settings.user_ids if i not in by_id]
        if missing:
            raise ProfileError(f"user ids {missing} are not in {source}; it has ids {min(by_id)}..{max(by_id)}")
        profiles = [by_id[i] for i in dict.fromkeys(settings.user_ids)]
    elif settings.users:
        if settings.users > len(profiles):
            raise ProfileError(f"--users {settings.users} asks for more users than {source} has ({len(profiles)})")
        profiles = profiles[: settings.users]
    if settings.shard:
        k, n = parse_shard(settings.shard)
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


def profile_hashes(profiles: list[UserProfile]) -> dict[int, str]:
    """A short hash of each user's definition: a changed profile never resumes old results."""
    return {
        p.i: hashlib.sha256(json.dumps([p.persona, p.preferences], sort_keys=True).encode()).hexdigest()[:12]
        for p in profiles
    }


def result_settings(settings: RunSettings, dataset: LoadedDataset) -> dict:
    """The settings that change results: part of every record's key (``settings_hash``). Derived
    from the declarations (``spec.Spec`` on each field; the memory design's ``design_keys``),
    plus the prompts' version, the dataset's key and what :func:`content_keys` adds."""
    design = design_keys(settings.session.memory)
    out = {
        "prompts": PROMPTS_VERSION,
        "dataset": dataset.key,
        **declared_settings((settings, settings.session), design.reads),
        **content_keys(settings, dataset),
    }
    if design.parameters:
        out["memory_parameters"] = design.parameters
    return out


def content_keys(settings: RunSettings, dataset: LoadedDataset) -> dict:
    """The contents a run reads that key its results: the whole profile set (not the users chosen,
    so the shards of a run share one key), the dataset's problems, the published texts. Each stays
    out at the value results made before it was keyed had (the built-in profiles, the known
    samples, the published repository's texts), so those results keep their hash."""
    out: dict = {}
    profiles = load_profiles(settings.profiles) if settings.profiles else builtin_profiles(100)
    digest = profile_set_digest(profiles)
    if digest != BUILTIN_PROFILE_SET:
        out["profile_set"] = digest
    if dataset.content_key:
        out["dataset_content"] = dataset.content_key
    if settings.session.protocol == "published":
        texts = load_published(settings.session.published_code).digest()
        if texts != PUBLISHED_TEXTS:
            out["published_texts"] = texts
    return out


def key_of(settings: RunSettings, dataset: LoadedDataset) -> tuple[dict, str]:
    payload = result_settings(settings, dataset)
    return payload, settings_hash(payload)


def plan_jobs(settings: RunSettings, profiles: list[UserProfile], dataset: LoadedDataset) -> dict[int, list[SessionJob]]:
    """Each user's sessions in order: the dataset's problems, or a seeded order per user; under
    ``--trials N`` the user's series of trial 0, then of trial 1, ... (same problems, same order)."""
    jobs: dict[int, list[SessionJob]] = {}
    for profile in profiles:
        order = list(range(len(dataset.problems)))
        if settings.shuffle_problems_per_user:
            random.Random(f"{settings.seed}-{profile.i}").shuffle(order)
        jobs[profile.i] = [
            SessionJob(profile, k, pid, dataset.problems[pid], t, trial_seed(settings.seed, profile.i, k, t))
            for t in range(settings.trials)
            for k, pid in enumerate(order)
        ]
    return jobs


def trial_seed(run_seed: int, user_id: int, session_index: int, trial: int) -> int | None:
    """The sampling seed of one trial of a session: none for trial 0 (what a run without trials
    sends), else a 31-bit number derived from the run's seed, the user, the session and the trial."""
    if trial == 0:
        return None
    digest = hashlib.sha256(f"{run_seed}-{user_id}-{session_index}-{trial}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


@lru_cache(maxsize=64)
def trial_context(ctx: SessionContext, trial: int) -> SessionContext:
    """The session context of a trial: trial 0's is the run's; each later trial keeps its memory in
    a namespace of its own (an independent series of the user's sessions)."""
    if trial == 0:
        return ctx
    return ctx.model_copy(update={"memory_namespace": f"{ctx.memory_namespace}-trial{trial}"})


def record_setting(settings: RunSettings, dataset: LoadedDataset, key_hash: str) -> dict:
    """The fields that name a run's setting in each of its records."""
    return {
        "dataset": dataset.name,
        "experiment_type": settings.experiment_type,
        "memory": settings.session.memory,
        "settings_hash": key_hash,
        "agent_model": settings.session.agent_model,
        "user_model": settings.session.user_model,
    }
