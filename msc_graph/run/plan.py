"""Planning a run (pure functions): which users, which problems for each, in which order, and the
settings that key a record (``settings_hash``)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from msc_graph.config import RunSettings, settings_hash
from msc_graph.data import LoadedDataset, UserProfile, builtin_profiles, load_profiles
from msc_graph.data.profiles import ProfileError
from msc_graph.memory.registry import EMBEDDING_DESIGNS
from msc_graph.prompts import PROMPTS_VERSION
from msc_graph.run.errors import RunError
from msc_graph.run.records import SessionJob


def select_profiles(settings: RunSettings) -> tuple[list[UserProfile], str]:
    """The users of this run and where they come from."""
    if settings.profiles:
        profiles = load_profiles(settings.profiles)
        source = str(Path(settings.profiles).resolve())
    else:
        wanted = max(100, (max(settings.user_ids) + 1) if settings.user_ids else 0, settings.users or 0)
        profiles, source = builtin_profiles(wanted), "builtin"
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
    """The settings that change results: part of every record's key (``settings_hash``)."""
    s = settings.session
    out = {
        "prompts": PROMPTS_VERSION,
        "dataset": dataset.key,
        "dataset_seed": settings.seed,
        "shuffle_problems_per_user": settings.shuffle_problems_per_user,
        "max_turns": s.max_turns,
        "memory": s.memory,
        "agent_reply": s.agent_reply,
        "agent_context_tokens": s.agent_context_tokens,
        **{role: _role_fields(settings, role) for role in ("user", "agent", "judge")},
    }
    if s.user_kind == "human":
        out["user_kind"] = "human"
    if s.memory in EMBEDDING_DESIGNS:
        out.update(retrieval_k=s.retrieval_k, retrieval_threshold=s.retrieval_threshold, embedding=s.embedding_model)
    if s.protocol != "ours":
        out["protocol"] = s.protocol
    if settings.split != "test":
        out["split"] = settings.split
    if s.reflection_model:  # only when set, so the keys of runs without it stay as they were
        out["reflection_model"] = s.reflection_model
    return out


def _role_fields(settings: RunSettings, role: str) -> dict:
    s = settings.session
    return {
        "model": getattr(s, f"{role}_model"),
        "temperature": getattr(s, f"{role}_temperature"),
        "max_tokens": getattr(s, f"{role}_max_tokens"),
        "structured": s.structured,
    }


def key_of(settings: RunSettings, dataset: LoadedDataset) -> tuple[dict, str]:
    payload = result_settings(settings, dataset)
    return payload, settings_hash(payload)


def plan_jobs(settings: RunSettings, profiles: list[UserProfile], dataset: LoadedDataset) -> dict[int, list[SessionJob]]:
    """Each user's sessions in order: the dataset's problems, or a seeded order per user."""
    jobs: dict[int, list[SessionJob]] = {}
    for profile in profiles:
        order = list(range(len(dataset.problems)))
        if settings.shuffle_problems_per_user:
            random.Random(f"{settings.seed}-{profile.i}").shuffle(order)
        jobs[profile.i] = [SessionJob(profile, k, pid, dataset.problems[pid]) for k, pid in enumerate(order)]
    return jobs


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
