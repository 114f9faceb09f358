"""Resume decisions: what is done, what runs again, what is refused, which memory is restored."""

from __future__ import annotations

import pytest

from msc_graph.data import builtin_profiles
from msc_graph.run.errors import RunError
from msc_graph.run.records import SessionJob
from msc_graph.run.resume import check_compatible, plan_resume

H = "hash-a"
USERS = builtin_profiles(2)


def jobs(sessions: int = 3) -> dict[int, list[SessionJob]]:
    return {p.i: [SessionJob(p, k, k, {"problem": f"p{k}", "solution": "s"}) for k in range(sessions)] for p in USERS}


def rec(uid: int, k: int, *, kind: str | None = None, notes=None, h: str = H) -> dict:
    r = {"user_id": uid, "session_index": k, "settings_hash": h, "notes_after": notes if notes is not None else [f"n{uid}.{k}"]}
    r["failure"] = {"stage": "agent", "reason": "x", "kind": kind} if kind else None
    return r


def todo(plan) -> dict[int, list[int]]:
    return {uid: [j.session_index for j in js] for uid, js in plan.todo.items()}


def test_finished_sessions_are_skipped_and_the_rest_run():
    records = [rec(0, 0), rec(0, 1), rec(1, 0)]
    plan = plan_resume(records, H, jobs(), learns=False, retry_failed="infra")
    assert todo(plan) == {0: [2], 1: [1, 2]} and plan.skipped == 3


def test_infrastructure_failures_run_again_by_default_and_content_failures_stay():
    records = [rec(0, 0, kind="infrastructure"), rec(0, 1, kind="content"), rec(0, 2), rec(1, 0, kind="internal")]
    plan = plan_resume(records, H, jobs(), learns=False, retry_failed="infra")
    assert todo(plan)[0] == [0] and plan.retried == 1
    assert (0, 1, 0) in plan.done and plan.done[(0, 1, 0)]["failure"]["kind"] == "content"
    assert todo(plan)[1] == [1, 2]  # the internal failure is final under "infra"
    assert todo(plan_resume(records, H, jobs(), learns=False, retry_failed="all"))[0] == [0, 1]
    assert 0 not in todo(plan_resume(records, H, jobs(), learns=False, retry_failed="none"))


def test_a_judge_failure_runs_again_by_default_but_not_with_none():
    """A grade that stayed unreadable (a small judge model) is the measurement's failure, not the
    session's: the default rerun runs the session again, so a rerun can recover it."""
    judged = {**rec(0, 1, kind="content"), "failure": {"stage": "judge", "reason": "unparseable reply", "kind": "content"}}
    records = [rec(0, 0), judged, rec(0, 2)]
    plan = plan_resume(records, H, jobs(), learns=False, retry_failed="infra")
    assert todo(plan)[0] == [1] and plan.retried == 1
    assert todo(plan_resume(records, H, jobs(), learns=False, retry_failed="none")).get(0) is None


def test_the_last_record_of_a_session_counts():
    records = [rec(0, 0, kind="infrastructure"), rec(0, 0)]  # failed, then rerun and finished
    plan = plan_resume(records, H, jobs(1), learns=False, retry_failed="infra")
    assert plan.done[(0, 0, 0)]["failure"] is None and 0 not in plan.todo


def test_a_memory_user_reruns_from_its_first_retried_session_with_the_memory_before_it():
    records = [rec(0, 0, notes=["a"]), rec(0, 1, kind="infrastructure", notes=["a"]), rec(0, 2, notes=["c"])]
    plan = plan_resume(records, H, jobs(), learns=True, retry_failed="infra")
    assert todo(plan)[0] == [1, 2]  # session 2 ran with memory the rerun of session 1 replaces
    assert plan.restore[(0, 0)] == ["a"] and plan.rerun_after_retry == 1
    assert (0, 0, 0) in plan.done and (0, 2, 0) not in plan.done


def test_a_finished_memory_user_still_gets_its_last_memory_restored():
    records = [rec(1, 0, notes=["x"]), rec(1, 1, notes=["y"]), rec(1, 2, notes=["z"])]
    plan = plan_resume(records, H, {1: jobs()[1]}, learns=True, retry_failed="infra")
    assert 1 not in plan.todo and plan.restore[(1, 0)] == ["z"]
    fresh = plan_resume([], H, {1: jobs()[1]}, learns=True, retry_failed="infra")
    assert todo(fresh)[1] == [0, 1, 2] and fresh.restore[(1, 0)] is None


def test_other_settings_or_changed_profiles_are_refused():
    with pytest.raises(RunError, match="different settings"):
        check_compatible([rec(0, 0, h="other")], H, {0: "p"}, "out.jsonl")
    with pytest.raises(RunError, match="profiles have changed"):
        check_compatible([{**rec(0, 0), "profile_hash": "old"}], H, {0: "new"}, "out.jsonl")
    check_compatible([{**rec(0, 0), "profile_hash": "p"}], H, {0: "p"}, "out.jsonl")


def test_a_file_made_before_the_profile_set_keyed_results_resumes_under_its_own_key():
    """A run on the published profiles made before the profile set entered the key carries the
    hash main's code gave it (pinned: computed with that code). A rerun that provably is the same
    run (same profiles, same problems) goes on under that key; anything else is not adopted."""
    from msc_graph.config import RunSettings
    from msc_graph.data import load_dataset_problems, load_profiles
    from msc_graph.run.plan import key_of, plan_jobs, profile_hashes
    from msc_graph.run.resume import earlier_key
    from tests.helpers import PROFILES_FILE, require_shared

    require_shared()
    settings = RunSettings(profiles=str(PROFILES_FILE), dataset="demo", eval_size=3)
    data = load_dataset_problems("demo", 3)
    payload, key_hash = key_of(settings, data)
    assert "profile_set" in payload and key_hash != "7d48408a76e94539"
    profiles = load_profiles(PROFILES_FILE)[:2]
    planned = plan_jobs(settings, profiles, data)
    hashes = profile_hashes(profiles)
    old = [{"user_id": u, "session_index": k, "settings_hash": "7d48408a76e94539", "profile_hash": hashes[u],
            "problem": data.problems[k]["problem"]} for u in (0, 1) for k in range(2)]  # fmt: skip
    earlier, earlier_hash = earlier_key(old, payload, key_hash, planned)
    assert earlier_hash == "7d48408a76e94539" and "profile_set" not in earlier
    check_compatible(old, earlier_hash, hashes, "out.jsonl")  # resumes: nothing refused
    assert todo(plan_resume(old, earlier_hash, planned, learns=False, retry_failed="infra")) == {0: [2], 1: [2]}
    other_problem = [{**old[0], "problem": "another problem"}, *old[1:]]
    assert earlier_key(other_problem, payload, key_hash, planned) is None
    assert earlier_key([{**r, "settings_hash": key_hash} for r in old], payload, key_hash, planned) is None
    assert earlier_key([], payload, key_hash, planned) is None
