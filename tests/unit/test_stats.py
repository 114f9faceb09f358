"""Statistics with sessions nested in users: the cluster bootstrap, the published aggregation, paired
tests, judge agreement; and the session table's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from msc_graph.results.measures import first_turn_enforced, session_table
from msc_graph.results.stats import (
    aggregate,
    cluster_ratios,
    clustered_mean,
    cohen_kappa,
    mean_ci,
    per_user_means,
    wilcoxon_p,
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


def test_wilcoxon_over_users():
    pytest.importorskip("scipy")
    assert wilcoxon_p([0.0, 0.0, 0.0]) is None
    assert wilcoxon_p([1.0]) is None
    assert wilcoxon_p([-1.0 - 0.01 * i for i in range(12)]) < 0.01
    assert wilcoxon_p([(-1) ** i * (1 + 0.01 * i) for i in range(12)]) > 0.3


def test_cohen_kappa():
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([1, 0, 1, 0], [1, 0, 1, 0]) == 1.0
    assert cohen_kappa([1, 1], [1, 1]) is None
    assert cohen_kappa([], []) is None


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
