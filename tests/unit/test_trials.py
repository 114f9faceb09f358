"""Repeated trials: planning (seeds, keys, memory namespaces), resume per trial, pass^k / pass@k,
flipping sessions, and the user-simulator checks of the report."""

from __future__ import annotations

import pytest

from msc_graph.config import RunSettings
from msc_graph.data import builtin_profiles, load_dataset_problems
from msc_graph.results.settings import LoadedResults
from msc_graph.results.simulator import simulator_tables
from msc_graph.results.trials import pass_at_k, pass_hat_k, trial_tables
from msc_graph.run import plan
from msc_graph.run.records import SessionJob, record_base
from msc_graph.run.resume import plan_resume

H = "hash-a"


def test_pass_hat_k_and_pass_at_k_are_the_unbiased_estimators():
    assert pass_hat_k(4, 2, 1) == pass_at_k(4, 2, 1) == 0.5
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)  # C(2,2)/C(4,2)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_hat_k(3, 3, 3) == 1.0 and pass_hat_k(3, 2, 3) == 0.0
    assert pass_at_k(3, 0, 3) == 0.0 and pass_at_k(3, 1, 3) == 1.0


def _settings(trials: int, **kw) -> RunSettings:
    return RunSettings(dataset="demo", eval_size=2, users=2, trials=trials, offline=True, **kw)


def test_trials_do_not_change_the_settings_hash_and_trial_zero_is_todays_job():
    dataset = load_dataset_problems("demo", 2, allow_download=False)
    one, three = _settings(1), _settings(3)
    assert plan.key_of(one, dataset) == plan.key_of(three, dataset)
    profiles = builtin_profiles(2)
    jobs1, jobs3 = plan.plan_jobs(one, profiles, dataset), plan.plan_jobs(three, profiles, dataset)
    assert [(j.trial, j.seed) for j in jobs1[0]] == [(0, None), (0, None)]
    assert [(j.trial, j.session_index) for j in jobs3[0]] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert jobs3[0][:2] == jobs1[0]  # trial 0 of a run with trials is the run without
    seeds = [j.seed for u in jobs3.values() for j in u if j.trial]
    assert None not in seeds and len(set(seeds)) == len(seeds)  # distinct per user, session, trial
    assert plan.plan_jobs(three, profiles, dataset)[0][2].seed == seeds[0]  # deterministic


def test_a_records_trial_is_written_only_above_zero():
    p = builtin_profiles(1)[0]
    problem = {"problem": "1+1?", "solution": "2"}
    assert "trial" not in record_base(SessionJob(p, 0, 0, problem), {})
    assert record_base(SessionJob(p, 0, 0, problem, trial=2, seed=5), {})["trial"] == 2


def test_each_trial_keeps_memory_in_a_namespace_of_its_own():
    ctx = _settings(2, experiment_type="agent_with_memory").session.model_copy(update={"memory_namespace": "h"})
    assert plan.trial_context(ctx, 0) is ctx
    assert plan.trial_context(ctx, 1).memory_namespace == "h-trial1"


def _jobs(trials: int) -> dict[int, list[SessionJob]]:
    p = builtin_profiles(1)[0]
    return {p.i: [SessionJob(p, k, k, {"problem": f"p{k}", "solution": "s"}, t) for t in range(trials) for k in range(2)]}


def _rec(k: int, trial: int, notes: list, failed: bool = False) -> dict:
    r = {"user_id": 0, "session_index": k, "settings_hash": H, "notes_after": notes}
    if trial:
        r["trial"] = trial
    r["failure"] = {"stage": "agent", "reason": "x", "kind": "infrastructure"} if failed else None
    return r


def test_resume_keys_by_trial_and_restores_each_trials_own_memory():
    records = [_rec(0, 0, ["a0"]), _rec(1, 0, ["b0"]), _rec(0, 1, ["a1"]), _rec(1, 1, ["b1"], failed=True)]
    resume = plan_resume(records, H, _jobs(2), learns=True, retry_failed="infra")
    assert [(j.trial, j.session_index) for j in resume.todo[0]] == [(1, 1)]
    assert resume.restore == {(0, 0): ["b0"], (0, 1): ["a1"]}  # trial 1 restarts from its own session 0
    assert set(resume.done) == {(0, 0, 0), (0, 1, 0), (0, 0, 1)}
    # a file of a run without trials resumes unchanged, and asking for a second trial runs only it
    old = [_rec(0, 0, ["a0"]), _rec(1, 0, ["b0"])]
    assert plan_resume(old, H, _jobs(1), learns=True, retry_failed="infra").todo == {}
    more = plan_resume(old, H, _jobs(2), learns=True, retry_failed="infra")
    assert [(j.trial, j.session_index) for j in more.todo[0]] == [(1, 0), (1, 1)] and more.restore[(0, 1)] is None


def _session(uid: int, k: int, trial: int, ts: int, turns: list[dict], ended_by: str = "terminate") -> dict:
    r = {"user_id": uid, "session_index": k, "problem_id": k, "dataset": "demo", "settings_hash": H, "memory": "none",
         "preferences": ["bullets", "short"], "task_success": ts, "turns": turns, "ended_by": ended_by,
         "user_effort": sum(t["enforce_preferences"] for t in turns), "length": 4}  # fmt: skip
    if trial:
        r["trial"] = trial
    return r


def _turn(enforce: bool, violated: bool) -> dict:
    return {"role": "user", "enforce_preferences": enforce, "preference_2_satisfied": "yes",
            "preference_1_satisfied": "No: no bullet points." if violated else "Yes, satisfied."}  # fmt: skip


def test_trial_tables_give_spread_pass_k_and_the_sessions_that_flip():
    wins = {(0, 0): [1, 1, 1], (0, 1): [1, 0, 0], (1, 0): [0, 0, 0], (1, 1): [1, 1, 0]}
    records = [_session(u, k, t, ts, []) for (u, k), got in wins.items() for t, ts in enumerate(got)]
    loaded = LoadedResults.from_records(records)
    t = trial_tables(loaded.records, loaded.settings)
    (row,) = t["trials"]
    assert row["trials"] == 3 and row["flipping sessions"] == 2
    assert row["TS per trial"] == "0: 0.750, 1: 0.500, 2: 0.250" and row["TS sd across trials"] == 0.25
    by_k = {r["k"]: r for r in t["pass_k"]}
    assert by_k[1]["pass^k_mean"] == pytest.approx(0.5) and by_k[3]["pass^k_mean"] == pytest.approx(0.25)
    assert by_k[3]["pass@k_mean"] == pytest.approx(0.75)
    assert by_k[2]["pass^k_mean"] == pytest.approx((1 + 0 + 0 + 1 / 3) / 4)
    assert [(f["user"], f["session"], f["successes"]) for f in t["flips"]] == [(0, 2, 1), (1, 2, 2)]
    assert trial_tables(LoadedResults.from_records([r for r in records if "trial" not in r]).records, {}) == {
        "trials": [], "pass_k": [], "flips": []}  # no trials: no section


def test_simulator_checks_measure_enforcement_early_ends_and_flag_a_cooperative_simulator():
    # 30 sessions x 3 trials: each session has one violated turn; enforced only in trial 0
    records = [_session(u, 0, t, 1 if t == 0 else 0, [_turn(t == 0, True), _turn(False, False)]) for u in range(30) for t in range(3)]
    loaded = LoadedResults.from_records(records)
    out = simulator_tables(loaded.records, loaded.settings)
    (row,) = out["simulator"]
    assert row["violated turns"] == 90 and row["enforce_rate_mean"] == pytest.approx(1 / 3)
    assert row["enforced without a violation"].startswith("0.0")
    assert row["early termination (TS 0)"].startswith("66.7")
    assert row["sessions over trials"] == 30 and row["enforced in all / none / some trials"] == "0 / 0 / 30"
    assert row["flag"].startswith("implausibly cooperative")
    assert out["simulator_preferences"] == [{"setting": row["setting"], "preference": "bullets", "violated turns": 90,
                                             "enforced when violated %": 33.3}]  # fmt: skip
    strict = [_session(u, 0, 0, 1, [_turn(True, True)]) for u in range(30)]
    loaded = LoadedResults.from_records(strict)
    assert simulator_tables(loaded.records, loaded.settings)["simulator"][0]["flag"] == ""


def test_a_seeded_session_sends_a_new_seed_per_call_and_an_unseeded_one_none():
    from msc_graph.llm import _seed_kwargs, sampling_seed

    assert _seed_kwargs() == {}
    with sampling_seed(None):
        assert _seed_kwargs() == {}
    with sampling_seed(7):
        assert [_seed_kwargs(), _seed_kwargs()] == [{"seed": 7}, {"seed": 8}]
    assert _seed_kwargs() == {}
