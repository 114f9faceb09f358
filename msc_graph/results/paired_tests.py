"""Paired tests over users: the Wilcoxon signed-rank test with its exact null distribution.

The unit of a paired test is the user (sessions are nested in users): each user contributes the mean
of their paired differences. Users whose mean difference is 0 are left out (Wilcoxon's treatment of
zeros) and the rest are ranked by absolute difference, tied values sharing their mid-rank. Under the
null hypothesis each user's sign is + or - with probability 1/2 whatever the ranks, so the exact
distribution of the statistic ``T+`` (the sum of the ranks of the positive differences) given the
observed ranks is the distribution over all 2^n sign assignments. It is computed by convolution
(mid-ranks doubled are integers), which stays exact with ties and costs O(n^3) at most: exact for up
to :data:`EXACT_MAX_USERS` users, the normal approximation with the tie correction above that.

Two-sided p: twice the smaller tail, at most 1 (``T+``'s null distribution is symmetric). With ties
this is not what ``scipy.stats.wilcoxon(method="exact")`` computes (its table assumes untied ranks);
it equals scipy's ``permutation_test`` of ``T+`` over sign flips with every flip enumerated.
Example: 4 users, every difference +1: T+ = 10 is the largest of 16 equally likely sign patterns,
so p = 2/16 = 0.125; 5 such users give 2/32 = 0.0625.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Up to this many users (non-zero differences) the p-value is exact.
EXACT_MAX_USERS = 400
EXACT = "exact Wilcoxon"
NORMAL = "Wilcoxon, normal approx."
#: The method in full, for a table's footnote.
METHOD_NOTE = (
    "p: two-sided Wilcoxon signed-rank test over users (each user's mean paired difference is one observation; "
    'users whose mean difference is 0 are left out; tied differences get mid-ranks). "exact Wilcoxon": p from the '
    "exact null distribution of the statistic given the observed ranks (every assignment of signs to the users "
    f'enumerated by convolution), used up to {EXACT_MAX_USERS} users; "{NORMAL}": the normal approximation with '
    "the tie correction, above that. Fewer than 2 users with a non-zero difference: no test."
)


@dataclass(frozen=True)
class PairedTest:
    """A test's p (None: no test possible), its method (short name), users with a difference and
    how many of them had a non-zero one (the ranked ones)."""

    p: float | None
    method: str
    users: int
    nonzero: int

    def fmt(self) -> str:
        """The table cell: p, the method and the users it rests on."""
        if self.p is None:
            return f"no test ({self.nonzero} of {self.users} users with a difference)"
        zeros = f", {self.users - self.nonzero} at 0 left out" if self.nonzero < self.users else ""
        return f"{self.p:.3g} ({self.method}; {self.nonzero} users{zeros})"


def doubled_midranks(values: np.ndarray) -> np.ndarray:
    """Twice the mid-rank of each value (ranks from 1; tied values share the mean of their ranks)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - counts + 1 + ends)[inverse]


def signed_rank_null(ranks2: np.ndarray) -> np.ndarray:
    """P(2 T+ = k) for k = 0..sum(ranks2) when each rank's sign is + or - with probability 1/2."""
    dist = np.zeros(int(ranks2.sum()) + 1)
    dist[0] = 1.0
    top = 0
    for r in map(int, ranks2):
        shifted = dist[: top + 1].copy()
        dist[: top + r + 1] *= 0.5
        dist[r : top + r + 1] += 0.5 * shifted
        top += r
    return dist


def _normal_p(t2: int, ranks2: np.ndarray) -> float:
    n = len(ranks2)
    _, ties = np.unique(ranks2, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((ties**3 - ties).sum()) / 48
    if var <= 0:
        return 1.0
    z = (t2 / 2 - n * (n + 1) / 4) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2))


def signed_rank_test(per_user_diffs: Sequence[float | None]) -> PairedTest:
    """The two-sided Wilcoxon signed-rank test of users' mean differences (see the module's text)."""
    diffs = np.array([float(d) for d in per_user_diffs if d is not None and not math.isnan(d)])
    # differences equal up to float noise (0.1 + 0.2 vs 0.3) are ties, and noise is no difference
    diffs = np.round(diffs, 9)
    nonzero = diffs[diffs != 0]
    users, n = len(diffs), len(nonzero)
    if n < 2:
        return PairedTest(None, EXACT, users, n)
    ranks2 = doubled_midranks(np.abs(nonzero))
    t2 = int(ranks2[nonzero > 0].sum())
    if n > EXACT_MAX_USERS:
        return PairedTest(min(1.0, _normal_p(t2, ranks2)), NORMAL, users, n)
    dist = signed_rank_null(ranks2)
    tails = float(dist[: t2 + 1].sum()), float(dist[t2:].sum())
    return PairedTest(min(1.0, 2 * min(tails)), EXACT, users, n)
