"""Planning a run: users and shards, each user's problems and their order, the settings hash."""

from __future__ import annotations

import pytest

from msc_graph.config import RunSettings
from msc_graph.data import LoadedDataset, builtin_profiles
from msc_graph.data.profiles import ProfileError
from msc_graph.run.errors import RunError
from msc_graph.run.plan import (
    key_of,
    parse_shard,
    plan_jobs,
    profile_hashes,
    result_settings,
    select_profiles,
    shard_users,
)

DATA = LoadedDataset("demo", [{"problem": f"p{i}", "solution": str(i)} for i in range(4)], "task", "builtin")


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_every_user_is_in_exactly_one_shard(n):
    users = builtin_profiles(100)
    shards = [shard_users(users, k, n) for k in range(1, n + 1)]
    ids = [p.i for shard in shards for p in shard]
    assert sorted(ids) == [p.i for p in users]
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shard_users(list(reversed(users)), 1, n) == shards[0]  # input order does not matter


@pytest.mark.parametrize("bad", ["0/2", "3/2", "x", "1-2"])
def test_bad_shard_spec_is_refused(bad):
    with pytest.raises(RunError, match="--shard"):
        parse_shard(bad)


def test_users_are_the_first_n_or_the_ids_named_in_their_order(tmp_path):
    profiles, source = select_profiles(RunSettings(users=3))
    assert [p.i for p in profiles] == [0, 1, 2] and source == "builtin"
    profiles, _ = select_profiles(RunSettings(user_ids=[7, 2, 7]))
    assert [p.i for p in profiles] == [7, 2]  # a repeated id runs once
    two = tmp_path / "profiles.json"
    two.write_text('[{"i": 0, "persona": "a", "preferences": ["x"]}, {"i": 1, "persona": "b", "preferences": ["y"]}]')
    with pytest.raises(ProfileError, match="more users than"):
        select_profiles(RunSettings(users=3, profiles=str(two)))
    assert len(select_profiles(RunSettings(users=150))[0]) == 150  # the built-in set grows to what is asked
    profiles, source = select_profiles(RunSettings(users=10, shard="2/3"))
    assert [p.i for p in profiles] == [1, 4, 7] and "shard 2/3" in source


def test_each_user_meets_the_problems_in_order_unless_shuffled_per_user():
    users, _ = select_profiles(RunSettings(users=3))
    jobs = plan_jobs(RunSettings(), users, DATA)
    assert all([j.problem_id for j in js] == [0, 1, 2, 3] for js in jobs.values())
    assert [j.session_index for j in jobs[0]] == [0, 1, 2, 3]
    shuffled = plan_jobs(RunSettings(shuffle_problems_per_user=True), users, DATA)
    orders = {uid: [j.problem_id for j in js] for uid, js in shuffled.items()}
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) > 1  # users get different orders
    again = plan_jobs(RunSettings(shuffle_problems_per_user=True), users, DATA)
    assert orders == {uid: [j.problem_id for j in js] for uid, js in again.items()}  # seeded: the same every time


def test_the_settings_hash_moves_with_what_changes_results_and_only_that():
    base = RunSettings()
    _, h = key_of(base, DATA)
    assert key_of(RunSettings(concurrency=3, progress=False, output_file="elsewhere.jsonl"), DATA)[1] == h
    changed = [
        RunSettings(session={"max_turns": 4}),
        RunSettings(session={"agent_model": "other"}),
        RunSettings(session={"judge_temperature": 0.5}),
        RunSettings(session={"protocol": "published"}),
        RunSettings(experiment_type="agent_with_memory"),
        RunSettings(split="train"),
        RunSettings(seed=7),
    ]
    hashes = {key_of(s, DATA)[1] for s in changed}
    assert h not in hashes and len(hashes) == len(changed)
    with_k = RunSettings(experiment_type="agent_with_memory", session={"retrieval_k": 2})
    assert key_of(with_k, DATA)[1] != key_of(RunSettings(experiment_type="agent_with_memory"), DATA)[1]
    assert "retrieval_k" not in result_settings(base, DATA)  # no memory: retrieval settings do not key it


def test_a_changed_profile_changes_its_hash():
    users = builtin_profiles(2)
    edited = [users[0].model_copy(update={"persona": "someone else"}), users[1]]
    a, b = profile_hashes(users), profile_hashes(edited)
    assert a[0] != b[0] and a[1] == b[1]


def test_custom_dataset_files_are_keyed_by_their_content(tmp_path):
    from msc_graph.data import load_dataset_problems

    one, two = tmp_path / "a" / "set.json", tmp_path / "b" / "set.json"
    for path, solution in ((one, "1"), (two, "2")):
        path.parent.mkdir()
        path.write_text(f'[{{"problem": "what?", "solution": "{solution}"}}]')
    a, b = load_dataset_problems(str(one), 1), load_dataset_problems(str(two), 1)
    assert a.name == b.name == "set" and a.key != b.key
    assert key_of(RunSettings(), a)[1] != key_of(RunSettings(), b)[1]


def test_bad_shard_in_settings_is_refused_when_planning():
    with pytest.raises(RunError, match="K/N"):
        select_profiles(RunSettings(shard="x"))
