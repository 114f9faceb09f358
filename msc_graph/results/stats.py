"""Statistics over session records, with sessions nested in users.

A user's sessions are not independent draws (the same person, the same memory), so every interval
here resamples *users*: a percentile bootstrap over users of the per-user sums, which gives the
interval of a per-session mean (a ratio of sums) with the users as clusters. It is the percentile
method of ``scipy.stats.bootstrap(..., paired=True)`` over per-user sums (a unit test checks that
the two agree), done as one matrix product: a resample is a vector of how often each user was drawn
(multinomial), so every metric of a group shares the same resamples, a resample in which no drawn
user has a metric is left out for that metric, and a report's thousands of intervals take a second
instead of minutes (scipy's bootstrap costs a few milliseconds per call and cannot share resamples
across metrics with gaps). The mean of per-user means gets the same bootstrap over the per-user
means. Paired differences are grouped by user the same way (their test over users:
:mod:`msc_graph.results.paired_tests`), and so is the interval of Cohen's kappa (:func:`kappa_ci`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
#: What every interval of the report is, in words (captions and notes quote it).
CI_METHOD = f"{LEVEL:.0%} CI: percentile bootstrap over users (clusters), {RESAMPLES} resamples"


def plural(n: int, unit: str) -> str:
    """``n unit`` with the unit (given in the plural) singular for one: "1 user", "3 users"."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


@dataclass
class Estimate:
    mean: float | None
    low: float | None
    high: float | None
    #: Sessions (or pairs) the mean is over.
    n: int
    #: Users (clusters) the interval resamples.
    users: int = 0

    def fmt(self, scale: float = 1.0, digits: int = 2) -> str:
        if self.mean is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"

    def fmt_n(self, digits: int = 2, unit: str = "sessions") -> str:
        """:meth:`fmt` with what the value rests on: ``n`` (in ``unit``) and the users."""
        if self.mean is None:
            return f"n/a ({plural(0, unit)})"
        return f"{self.fmt(digits=digits)} (n = {plural(self.n, unit)}, {plural(self.users, 'users')})"

    def scaled(self, scale: float) -> Estimate:
        s = lambda v: None if v is None else v * scale  # noqa: E731
        return Estimate(s(self.mean), s(self.low), s(self.high), self.n, self.users)


@lru_cache(maxsize=64)
def resample_weights(users: int, seed: int = 0) -> np.ndarray:
    """RESAMPLES x users: how often each user is drawn in each resample (seeded: reports reproduce)."""
    rng = np.random.default_rng([seed, users])
    weights = rng.multinomial(users, np.full(users, 1.0 / users), size=RESAMPLES).astype(float)
    weights.setflags(write=False)
    return weights


def _percentiles(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of each column, over the resamples where it is defined."""
    alpha = (1 - LEVEL) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        defined = np.isfinite(boot)
        boot = np.where(defined, boot, np.nan)
        lows = np.full(boot.shape[1], np.nan)
        highs = np.full(boot.shape[1], np.nan)
        ok = defined.any(axis=0)
        if ok.any():
            lows[ok] = np.nanpercentile(boot[:, ok], 100 * alpha, axis=0)
            highs[ok] = np.nanpercentile(boot[:, ok], 100 * (1 - alpha), axis=0)
    return lows, highs


def cluster_ratios(nums: Sequence, dens: Sequence, *, seed: int = 0) -> list[Estimate]:
    """For each metric (column), ``sum(num) / sum(den)`` with a percentile bootstrap over users
    (rows: each user's sums). A per-session mean is this with ``den`` the user's session counts.
    Every column shares the same resamples of users."""
    nums, dens = np.atleast_2d(np.asarray(nums, dtype=float)), np.atleast_2d(np.asarray(dens, dtype=float))
    if nums.shape[0] == 0:
        return [Estimate(None, None, None, 0, 0) for _ in range(nums.shape[1] if nums.ndim == 2 else 0)]
    counts, users = dens.sum(axis=0), (dens > 0).sum(axis=0)
    lows = highs = np.full(nums.shape[1], np.nan)
    if nums.shape[0] >= 2:
        weights = resample_weights(nums.shape[0], seed)
        with np.errstate(invalid="ignore", divide="ignore"):
            lows, highs = _percentiles((weights @ nums) / (weights @ dens))
    out = []
    for i in range(nums.shape[1]):
        if counts[i] <= 0:
            out.append(Estimate(None, None, None, 0, 0))
            continue
        ok = users[i] >= 2 and math.isfinite(lows[i]) and math.isfinite(highs[i])
        mean = float(nums[:, i].sum() / counts[i])
        out.append(Estimate(mean, float(lows[i]) if ok else None, float(highs[i]) if ok else None, int(counts[i]), int(users[i])))
    return out


def cluster_ratio(num: Sequence[float], den: Sequence[float], *, n: int | None = None, seed: int = 0) -> Estimate:
    """:func:`cluster_ratios` of one metric; ``n`` overrides the count it reports."""
    keep = np.asarray(den, dtype=float) > 0
    est = cluster_ratios(np.asarray(num, dtype=float)[keep][:, None], np.asarray(den, dtype=float)[keep][:, None], seed=seed)[0]
    if n is not None:
        est.n = n
    return est


def mean_ci(values: Sequence[float], *, seed: int = 0) -> Estimate:
    """The mean of ``values`` with a percentile bootstrap interval (each value one cluster)."""
    data = [float(v) for v in values if v is not None and not math.isnan(v)]
    return cluster_ratio(data, [1.0] * len(data), seed=seed)


def clustered_mean(values: Iterable[float], clusters: Iterable, *, seed: int = 0) -> Estimate:
    """The mean of per-session ``values`` with the interval of a bootstrap over ``clusters`` (users)."""
    sums: dict = defaultdict(float)
    counts: dict = defaultdict(int)
    for v, c in zip(values, clusters, strict=True):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        sums[c] += float(v)
        counts[c] += 1
    keys = list(sums)
    return cluster_ratio([sums[k] for k in keys], [counts[k] for k in keys], seed=seed)


def _user_of(r: dict, i: int):
    return r.get("user_id", ("record", i))


def aggregate(records: Iterable[dict]) -> dict:
    """TS / UE / Len over completed sessions (intervals clustered by user), and failure counts by stage."""
    records = list(records)
    ok = [(i, r) for i, r in enumerate(records) if not r.get("failure")]
    failures: dict[str, int] = defaultdict(int)
    for r in records:
        if r.get("failure"):
            failures[r["failure"].get("stage", "unknown")] += 1
    scored = [(i, r) for i, r in ok if r.get("task_success") is not None]
    return {
        "sessions": len(records),
        "completed": len(ok),
        "users": len({_user_of(r, i) for i, r in enumerate(records)}),
        "task_success": clustered_mean([float(r["task_success"]) for _, r in scored], [_user_of(r, i) for i, r in scored]),
        "user_effort": clustered_mean([float(r["user_effort"]) for _, r in ok], [_user_of(r, i) for i, r in ok]),
        "length": clustered_mean([float(r["length"]) for _, r in ok], [_user_of(r, i) for i, r in ok]),
        "failures": dict(failures),
    }


def aggregate_by_session_index(records: Iterable[dict]) -> dict[int, dict]:
    """:func:`aggregate` per session index (0-based keys, as records count them)."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        groups[int(r["session_index"])].append(r)
    return {k: aggregate(v) for k, v in sorted(groups.items())}


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters' labels over the same items (None when undefined: no items, or
    both raters gave one and the same label to everything)."""
    if not a or len(a) != len(b):
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    labels = set(a) | set(b)
    expected = sum((sum(x == k for x in a) / n) * (sum(y == k for y in b) / n) for k in labels)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def _kappa_of_counts(counts: np.ndarray, labels: int) -> np.ndarray:
    """Kappa per row of ``counts``: [items, agreements, rater a's count of each label, rater b's ...]
    (NaN where undefined)."""
    items = counts[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = counts[:, 1] / items[:, 0]
        pa, pb = counts[:, 2 : 2 + labels] / items, counts[:, 2 + labels :] / items
        expected = (pa * pb).sum(axis=1)
        kappa = (observed - expected) / (1 - expected)
    return np.where(expected < 1 - 1e-12, kappa, np.nan)


def kappa_ci(a: Sequence, b: Sequence, users: Sequence, *, seed: int = 0) -> Estimate:
    """Cohen's kappa of two raters over the same items, with the percentile interval of a bootstrap
    over ``users`` (an item's cluster): each resample draws users, with all their items, as every
    interval of the report does. ``n``: items; ``users``: clusters (no interval under two)."""
    if not a or not len(a) == len(b) == len(users):
        return Estimate(None, None, None, 0, 0)
    kappa = cohen_kappa(list(a), list(b))
    labels = sorted(set(a) | set(b), key=str)
    keys = list(dict.fromkeys(users))
    row = {u: i for i, u in enumerate(keys)}
    counts = np.zeros((len(keys), 2 + 2 * len(labels)))
    for x, y, u in zip(a, b, users, strict=True):
        c = counts[row[u]]
        c[0] += 1
        c[1] += x == y
        c[2 + labels.index(x)] += 1
        c[2 + len(labels) + labels.index(y)] += 1
    low = high = None
    if kappa is not None and len(keys) >= 2:
        boot = _kappa_of_counts(resample_weights(len(keys), seed) @ counts, len(labels))
        lows, highs = _percentiles(boot[:, None])
        if math.isfinite(lows[0]) and math.isfinite(highs[0]):
            low, high = float(lows[0]), float(highs[0])
    return Estimate(kappa, low, high, len(a), len(keys))


def per_user_means(records: Iterable[dict]) -> dict[str, float | None]:
    """The published aggregation over completed sessions: TS and Length averaged per user, then over
    users (users without a completed session are left out, as the published code leaves them);
    User Effort pooled over all sessions, as the published script counts it."""
    by_user: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        if not r.get("failure"):
            by_user[r["user_id"]].append(r)
    out: dict[str, float | None] = {}
    for key in ("task_success", "length"):
        means = []
        for recs in by_user.values():
            values = [float(r[key]) for r in recs if r.get(key) is not None]
            if values:
                means.append(sum(values) / len(values))
        out[key] = sum(means) / len(means) if means else None
    efforts = [float(r["user_effort"]) for recs in by_user.values() for r in recs if r.get("user_effort") is not None]
    out["user_effort"] = sum(efforts) / len(efforts) if efforts else None
    out["users"] = float(len(by_user))
    return out
