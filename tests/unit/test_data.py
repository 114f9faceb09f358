"""Datasets and user profiles: the published data loads offline; bad files give clear errors."""

from __future__ import annotations

import json

import pytest

from msc_graph.data import (
    DATASETS,
    DatasetError,
    ProfileError,
    builtin_profiles,
    generate_profiles,
    load_dataset_problems,
    load_profiles,
)
from msc_graph.data.preferences import PREFERENCE_TYPES
from tests.helpers import DATASETS_DIR, PROFILES_FILE, require_shared

PUBLISHED = ["math-hard", "math-500", "logiqa", "mmlu", "medqa"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_samples_load_from_the_cache_without_network(name, monkeypatch):
    require_shared()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = load_dataset_problems(name, 20, cache_dir=DATASETS_DIR, allow_download=False)
    assert len(ds) == 20
    assert all(p["problem"].strip() and isinstance(p["solution"], str) for p in ds.problems)
    assert ds.task_description == DATASETS[name].task_description
    assert ds.source.endswith("testset_size20_seed42.json")


def test_a_smaller_request_is_a_prefix_of_the_cached_sample():
    require_shared()
    full = load_dataset_problems("mmlu", 20, cache_dir=DATASETS_DIR, allow_download=False)
    part = load_dataset_problems("mmlu", 5, cache_dir=DATASETS_DIR, allow_download=False)
    assert part.problems == full.problems[:5]


def test_cache_dir_from_environment(monkeypatch):
    require_shared()
    monkeypatch.setenv("MSC_DATA_DIR", str(DATASETS_DIR))
    assert len(load_dataset_problems("logiqa", 3, allow_download=False)) == 3


def test_missing_cache_offline_names_dataset_path_and_fix(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset_problems("medqa", 7, cache_dir=tmp_path, allow_download=False)
    msg = str(err.value)
    assert "medqa" in msg and str(tmp_path / "medqa" / "testset_size7_seed42.json") in msg
    assert "--data-dir" in msg


def test_missing_cache_with_unreachable_hub_gives_the_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError) as err:
        load_dataset_problems("math-500", 4, cache_dir=tmp_path, allow_download=True)
    assert "HuggingFaceH4/MATH-500" in str(err.value) and "could not be reached" in str(err.value)


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DatasetError, match="unknown dataset 'mathz'.*math-hard"):
        load_dataset_problems("mathz", 2)


def test_demo_dataset_ships_with_the_package():
    ds = load_dataset_problems("demo", 10)
    assert len(ds) == 10 and ds.source.startswith("builtin:")


def test_custom_dataset_files(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"problem": "1+1?", "solution": "2"}\n{"problem": "2+2?", "solution": "4"}\n')
    assert [p["solution"] for p in load_dataset_problems(str(jsonl), 2).problems] == ["2", "4"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question": "no problem key"}]))
    with pytest.raises(DatasetError, match="item 0 is not a"):
        load_dataset_problems(str(bad), 1)


def test_published_profiles_validate():
    require_shared()
    profiles = load_profiles(PROFILES_FILE)
    assert len(profiles) == 100
    assert all(len(p.preferences) == 3 and len(p.categories) == 3 for p in profiles)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        ('[{"i": 0, "persona": "x"}]', r"entry 0 \(preferences\)"),
        ('[{"i": 0, "persona": "x", "preferences": ["a"], "categories": ["c", "d"]}]', "parallel"),
        ('[{"i": 1, "persona": "x", "preferences": ["a"]}, {"i": 1, "persona": "y", "preferences": ["b"]}]', "twice"),
    ],
)
def test_malformed_profile_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "profiles.json"
    path.write_text(content)
    with pytest.raises(ProfileError, match=match):
        load_profiles(path)


def test_builtin_profiles_never_pair_two_preferences_of_one_category():
    users = generate_profiles(500, seed=3)
    by_key = {p.key: p for p in PREFERENCE_TYPES}
    for u in users:
        assert len(set(u.categories)) == 3
        keys = u.preference_keys or []
        assert all(by_key[k].opposite not in keys for k in keys)
        assert [by_key[k].category for k in keys] == u.categories


def test_builtin_profiles_are_stable_and_cover_all_twenty_types():
    assert builtin_profiles(10) == builtin_profiles(10)
    assert len(PREFERENCE_TYPES) == 20
    used = {k for u in generate_profiles(300) for k in (u.preference_keys or [])}
    assert used == {p.key for p in PREFERENCE_TYPES}
    assert all("Enforce" in p.text for p in PREFERENCE_TYPES)


def test_the_published_sampling_rule_for_test_and_train():
    from msc_graph.data.datasets import sample_rows

    rows = [{"problem": p, "solution": "s"} for p in ["a", "b", "a", "c", "d", "b", "e"]]  # shuffled, with repeats
    test, train = sample_rows(rows, 2)
    assert [r["problem"] for r in test] == ["a", "b"]
    # the first items whose problem is not in the test sample (repeats of a test problem are skipped)
    assert [r["problem"] for r in train] == ["c", "d"]


def test_a_train_sample_is_read_from_its_own_cache_file(tmp_path):
    folder = tmp_path / "logiqa"
    folder.mkdir()
    (folder / "trainset_size3_seed42.json").write_text(json.dumps([{"problem": f"t{i}", "solution": "x"} for i in range(3)]))
    (folder / "testset_size5_seed42.json").write_text(json.dumps([{"problem": f"q{i}", "solution": "y"} for i in range(5)]))
    train = load_dataset_problems("logiqa", 3, cache_dir=tmp_path, split="train", allow_download=False)
    assert [p["problem"] for p in train.problems] == ["t0", "t1", "t2"] and train.source.endswith("trainset_size3_seed42.json")
    with pytest.raises(DatasetError, match="train sample of 2"):  # a train sample serves only its own size
        load_dataset_problems("logiqa", 2, cache_dir=tmp_path, split="train", allow_download=False)
    assert len(load_dataset_problems("logiqa", 2, cache_dir=tmp_path, allow_download=False)) == 2  # a test prefix


def test_math_samples_keep_their_level_and_type():
    require_shared()
    data = load_dataset_problems("math-hard", 2, cache_dir=DATASETS_DIR, allow_download=False)
    assert {"level", "type"} <= set(data.problems[0])
