"""Statistics over session records: means with bootstrap confidence intervals, per session index,
and paired differences."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


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
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if n == 1:
        return Estimate(mean, None, None, 1)
    rng = np.random.default_rng(seed)
    means = np.empty(iterations)
    chunk = max(1, 2_000_000 // n)  # bounded memory for large n
    for start in range(0, iterations, chunk):
        stop = min(iterations, start + chunk)
        means[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    means.sort()
    lo = float(means[int((1 - level) / 2 * iterations)])
    hi = float(means[min(iterations - 1, int((1 + level) / 2 * iterations))])
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


def per_user_means(records: Iterable[dict]) -> dict[str, float | None]:
    """The published aggregation: each user's mean over its completed sessions, then the mean over
    users (users without a completed session are left out, as the published code leaves them)."""
    by_user: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        if not r.get("failure"):
            by_user[r["user_id"]].append(r)
    out: dict[str, float | None] = {}
    for key in ("task_success", "user_effort", "length"):
        means = []
        for recs in by_user.values():
            values = [float(r[key]) for r in recs if r.get(key) is not None]
            if values:
                means.append(sum(values) / len(values))
        out[key] = sum(means) / len(means) if means else None
    out["users"] = float(len(by_user))
    return out
