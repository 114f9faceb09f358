"""Metrics: Task Success, User Effort and Length per session, and their aggregates with 95% CIs.

- ``task_success``: the judge's accuracy (0/1) for the final draft answer; ``None`` when the
  session failed before or during judging (such sessions are excluded from averages, and counted).
- ``user_effort``: user turns with ``enforce_preferences`` true.
- ``length``: messages in the session, counting the agent's opening and the final user message
  (the published definition).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


def user_effort(turns: list[dict]) -> int:
    return sum(1 for t in turns if t.get("role") == "user" and _truthy(t.get("enforce_preferences")))


def _truthy(v) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


def session_metrics(state: dict) -> dict:
    """The three metrics of one finished session state."""
    failed = bool(state.get("failure"))
    return {
        "task_success": None if failed else state.get("task_success"),
        "user_effort": user_effort(state.get("turns") or []),
        "length": len(state.get("messages") or []),
    }


@dataclass
class Estimate:
    mean: float | None
    low: float | None
    high: float | None
    n: int

    def fmt(self, scale: float = 1.0, digits: int = 2) -> str:
        if self.mean is None:
            return "n/a"
        if self.low is None or self.high is None or self.n < 2:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high, "n": self.n}


def bootstrap_ci(values: list[float], *, iterations: int = 2000, seed: int = 0, level: float = 0.95) -> Estimate:
    """Mean with a percentile bootstrap confidence interval (seeded, so reports are reproducible)."""
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0)
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, None, None, 1)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(iterations))
    lo = means[int((1 - level) / 2 * iterations)]
    hi = means[min(iterations - 1, int((1 + level) / 2 * iterations))]
    return Estimate(mean, lo, hi, n)


def aggregate(records: Iterable[dict]) -> dict:
    """TS / UE / Len with CIs over completed sessions, and failure counts by stage."""
    records = list(records)
    ok = [r for r in records if not r.get("failure")]
    failures: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("failure"):
            failures[r["failure"].get("stage", "unknown")] += 1
    return {
        "sessions": len(records),
        "completed": len(ok),
        "task_success": bootstrap_ci([float(r["task_success"]) for r in ok if r.get("task_success") is not None]),
        "user_effort": bootstrap_ci([float(r["user_effort"]) for r in ok]),
        "length": bootstrap_ci([float(r["length"]) for r in ok]),
        "failures": dict(failures),
    }


def aggregate_by_session_index(records: Iterable[dict]) -> dict[int, dict]:
    groups: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        groups[int(r["session_index"])].append(r)
    return {k: aggregate(v) for k, v in sorted(groups.items())}


def paired_bootstrap_diff(
    a: dict[tuple, float], b: dict[tuple, float], *, iterations: int = 2000, seed: int = 0
) -> Estimate:
    """Mean of ``b - a`` over the keys both have, with a paired bootstrap CI."""
    keys = sorted(set(a) & set(b))
    return bootstrap_ci([b[k] - a[k] for k in keys], iterations=iterations, seed=seed)
