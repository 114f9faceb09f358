"""Statistics with sessions nested in users: the cluster bootstrap, the published aggregation, paired
tests, judge agreement; and the session table's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msc_graph.results.measures import first_turn_enforced, session_table
from msc_graph.results.paired_tests import EXACT, EXACT_MAX_USERS, NORMAL, signed_rank_test
from msc_graph.results.stats import (
    RESAMPLES,
    aggregate,
    cluster_ratios,
    clustered_mean,
    cohen_kappa,
    kappa_ci,
    mean_ci,
    per_user_means,
    resample_weights,
)


def rec(user, session, ts=1, ue=0, length=6, **extra):
    return {"user_id": user, "session_index": session, "problem_id": session, "dataset": "d", "task_success": ts,
            "user_effort": ue, "length": length, "failure": None, **extra}  # fmt: skip


def test_published_aggregation_averages_ts_and_len_per_user_and_pools_ue():
    records = [rec(0, 0, ts=1, ue=4, length=10)] + [rec(1, k, ts=0, ue=0, length=4) for k in range(3)]
    records.append({**rec(1, 3, ts=None, ue=9, length=99), "failure": {"stage": "user", "reason": "x"}})
    pu = per_user_means(records)
    assert pu["task_success"] == 0.5  # (1 + 0) / 2 users, not 1/4 sessions
    assert pu["length"] == 7.0  # (10 + 4) / 2
    assert pu["user_effort"] == 1.0  # 4 enforcements over 4 completed sessions (per user it would be 2.0)
    assert pu["users"] == 2


def test_cluster_bootstrap_matches_scipy_percentile_bootstrap_over_users():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    num = rng.integers(0, 20, 60).astype(float)
    den = rng.integers(5, 21, 60).astype(float)
    (ours,) = cluster_ratios(num[:, None], den[:, None])
    ref = stats.bootstrap((num, den), lambda a, b, axis=-1: a.sum(axis) / b.sum(axis), paired=True, vectorized=True,
                          n_resamples=20000, method="percentile", random_state=np.random.default_rng(2))  # fmt: skip
    assert ours.mean == pytest.approx(num.sum() / den.sum())
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.02)
    assert ours.users == 60 and ours.n == int(den.sum())


def test_intervals_resample_users_not_sessions():
    # 10 users who always succeed and 10 who never do, 20 sessions each: sessions within a user are
    # perfectly correlated, so the interval must be as wide as for 20 independent draws, not 400
    values = [1.0 if u < 10 else 0.0 for u in range(20) for _ in range(20)]
    users = [u for u in range(20) for _ in range(20)]
    clustered = clustered_mean(values, users)
    naive = mean_ci(values)
    assert clustered.mean == naive.mean == 0.5
    assert (clustered.high - clustered.low) > 3 * (naive.high - naive.low)
    assert clustered.users == 20 and clustered.n == 400


def test_constant_data_gives_a_point_interval_and_one_user_none():
    (est,) = cluster_ratios([[3.0], [3.0]], [[4.0], [4.0]])
    assert (est.mean, est.low, est.high) == (0.75, 0.75, 0.75)
    (one,) = cluster_ratios([[1.0]], [[2.0]])
    assert one.mean == 0.5 and one.low is None and one.fmt() == "0.50"
    (empty,) = cluster_ratios(np.zeros((0, 1)), np.zeros((0, 1)))
    assert empty.mean is None and empty.fmt() == "n/a"


def test_metrics_with_gaps_leave_out_resamples_where_no_drawn_user_has_them():
    nums = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    dens = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])  # metric 2: only user 2 has it
    a, b = cluster_ratios(nums, dens)
    assert a.low is not None and a.users == 3
    assert b.mean == 1.0 and b.low is None and b.users == 1  # one user: no interval, never NaN


def test_paired_difference_is_clustered_by_user():
    a = {(u, s): 0.0 for u in range(20) for s in range(3)}
    b = {k: 1.0 for k in a}
    keys = sorted(a)
    diff = clustered_mean([b[k] - a[k] for k in keys], [k[0] for k in keys])
    assert diff.mean == 1.0 and diff.low == 1.0 and diff.n == 60 and diff.users == 20


def test_aggregate_counts_failures_and_clusters_by_user():
    records = [rec(u, k, ts=int(u % 2 == 0)) for u in range(6) for k in range(5)]
    records.append({**rec(0, 9, ts=None), "failure": {"stage": "judge", "reason": "no verdict"}})
    agg = aggregate(records)
    assert agg["completed"] == 30 and agg["sessions"] == 31 and agg["failures"] == {"judge": 1}
    assert agg["task_success"].mean == 0.5 and agg["task_success"].users == 6


def test_signed_rank_test_is_exact_with_ties_by_hand():
    # every sign pattern of n users is equally likely; all +1 is the most extreme of 2^n (and all -1
    # the other tail): 2/16 for 4 users, 2/32 for 5; the normal approximation would say 0.046 and 0.025
    four, five = signed_rank_test([1.0] * 4), signed_rank_test([1.0] * 5)
    assert (four.p, four.method, four.nonzero) == (0.125, EXACT, 4)
    assert (five.p, five.method) == (0.0625, EXACT)
    assert five.fmt() == "0.0625 (exact Wilcoxon; 5 users)"
    assert signed_rank_test([-1.0] * 5).p == 0.0625
    zero = signed_rank_test([1.0, 1.0, 1.0, 1.0, 0.0])  # a user without a difference is left out
    assert (zero.p, zero.users, zero.nonzero) == (0.125, 5, 4) and "1 at 0 left out" in zero.fmt()
    # float noise is neither a difference nor a broken tie
    assert signed_rank_test([0.1 + 0.2, 0.3, 0.3, 0.3, 1e-12]).p == 0.125
    none = signed_rank_test([0.0, 0.0, 1.0])
    assert none.p is None and none.fmt() == "no test (1 of 3 users with a difference)"
    assert signed_rank_test([]).p is None


def _t_plus(x, axis=-1):
    from scipy.stats import rankdata

    return (rankdata(np.abs(x), axis=axis) * (x > 0)).sum(axis=axis)


def test_signed_rank_test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (2, 5, 9, 13):
        untied = rng.normal(0.3, 1.0, n)
        assert signed_rank_test(untied).p == pytest.approx(stats.wilcoxon(untied, method="exact").pvalue, rel=1e-9)
        tied = rng.integers(-3, 5, n).astype(float)  # ties and zeros: every sign flip of the non-zero ones enumerated
        nonzero = tied[tied != 0]
        if len(nonzero) >= 2:
            ref = stats.permutation_test((nonzero,), _t_plus, permutation_type="samples", n_resamples=np.inf, vectorized=True)
            assert signed_rank_test(tied).p == pytest.approx(ref.pvalue, rel=1e-9), tied
    many = np.round(rng.normal(0.15, 1.0, 2 * EXACT_MAX_USERS), 1)  # tied, above the exact limit: scipy's approximation
    many = many[many != 0][: EXACT_MAX_USERS + 1]
    big = signed_rank_test(many)
    assert big.method == NORMAL and big.p == pytest.approx(stats.wilcoxon(many, method="approx").pvalue, rel=1e-9)


def test_cohen_kappa():
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    assert cohen_kappa([1, 1], [1, 1]) is None
    assert cohen_kappa([], []) is None


def test_kappa_interval_resamples_users():
    rng = np.random.default_rng(4)
    users = [u for u in range(12) for _ in range(5)]
    a = list(rng.integers(0, 2, len(users)))
    b = [x if rng.random() < 0.8 else 1 - x for x in a]
    est = kappa_ci(a, b, users)
    assert est.mean == pytest.approx(cohen_kappa(a, b)) and (est.n, est.users) == (60, 12)
    # the reference: each resample's items (a drawn user's five, as often as drawn), Cohen's kappa of them
    boot = []
    for w in resample_weights(12):
        ia = [x for u, x in zip(users, a, strict=True) for _ in range(int(w[u]))]
        ib = [y for u, y in zip(users, b, strict=True) for _ in range(int(w[u]))]
        boot.append(cohen_kappa(ia, ib))
    assert len(boot) == RESAMPLES
    ref = np.percentile([k for k in boot if k is not None], [2.5, 97.5])
    assert (est.low, est.high) == pytest.approx(tuple(ref))
    assert est.low < est.mean < est.high
    one = kappa_ci([1, 0, 1], [1, 0, 0], ["u", "u", "u"])
    assert one.mean is not None and one.low is None and one.users == 1
    constant = kappa_ci([1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 2, 2])  # one judge said 1 to everything
    assert (constant.mean, constant.low, constant.high) == (0.0, 0.0, 0.0)
    assert kappa_ci([], [], []).mean is None


def test_session_metrics_of_the_field():
    user = lambda enf, draft="x": {"role": "user", "enforce_preferences": enf, "draft_answer": draft}  # noqa: E731
    agent = {"role": "agent", "response": "r"}
    quick = rec(0, 0, ts=1, ue=0, ended_by="terminate", turns=[user(False), agent, user(False)],
                usage={"user": {"completion_tokens": 200}})  # fmt: skip
    slow = rec(1, 0, ts=1, ue=2, ended_by="max_turns", turns=[user(False), agent, user(True), agent, user(True)] + [agent, user(False)] * 3,
               usage={"user": {"completion_tokens": 600}})  # fmt: skip
    failed = {**rec(2, 0, ts=None), "failure": {"stage": "agent", "reason": "x"}}
    df = session_table([quick, slow, failed]).set_index("user_id")
    assert df.loc[0, "quick"] == 1.0 and df.loc[1, "quick"] == 0.0  # 2 user turns vs 5
    assert df.loc[0, "zero_enf"] == 1.0 and df.loc[1, "zero_enf"] == 0.0
    assert df.loc[0, "timeout"] == 0.0 and df.loc[1, "timeout"] == 1.0
    assert df.loc[0, "first_enf"] == 0.0 and df.loc[1, "first_enf"] == 1.0
    assert df.loc[0, "user_tokens"] == 200 and bool(df.loc[2, "failed"]) and math.isnan(df.loc[2, "ts"])
    # successes per 1k user tokens: 2 successes over 800 tokens
    assert df["success_per_1k__num"].sum() / df["success_per_1k__den"].sum() == pytest.approx(2.5)
    assert math.isnan(first_turn_enforced([user(True)]))  # no agent reply yet: not counted


def test_late_window_is_the_last_quarter_of_each_series():
    df = session_table([rec(u, k) for u in range(2) for k in range(20)])
    assert sorted(df.loc[df["late"], "session"].unique()) == [16, 17, 18, 19, 20]
    df4 = session_table([rec(0, k) for k in range(4)])
    assert list(df4.loc[df4["late"], "session"]) == [4]
