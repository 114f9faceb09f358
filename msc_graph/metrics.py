"""Metrics: Task Success, User Effort and Length per session, and their aggregates with 95% CIs.

- ``task_success``: the judge's accuracy (0/1) for the final draft answer; ``None`` when the
  session failed before or during judging (such sessions are excluded from averages, and counted).
- ``user_effort``: user turns with ``enforce_preferences`` true.
- ``length``: messages in the session, counting the agent's opening and the final user message
  (the published definition).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


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


_VIOLATION = re.compile(
    r"^\s*(no|not|false|unsatisfied)\b|\b(not satisf\w*|is not|isn't|does not|doesn't|did not|didn't|violat\w*|"
    r"fails?|failed|missing|lacks?|broken|unsatisfied|ignored?|without)\b",
    re.IGNORECASE,
)


def preference_violated(check: str | bool | None) -> bool:
    """Read a ``preference_<i>_satisfied`` check: the simulator writes a sentence, not a boolean."""
    if isinstance(check, bool):
        return not check
    return bool(check) and bool(_VIOLATION.search(str(check)))


def enforced_preferences(record: dict) -> list[int]:
    """Indices (0-based) of the preferences the user enforced in a session.

    A preference counts as enforced when a user turn has ``enforce_preferences`` true and its check
    for that preference reads as a violation. This is a text heuristic over the simulator's own
    words; turns that enforce without a readable check are not attributed to any preference.
    """
    n = len(record.get("preferences") or [])
    found: set[int] = set()
    for turn in record.get("turns") or []:
        if turn.get("role") != "user" or not _truthy(turn.get("enforce_preferences")):
            continue
        for i in range(n):
            if preference_violated(turn.get(f"preference_{i + 1}_satisfied")):
                found.add(i)
    return sorted(found)
