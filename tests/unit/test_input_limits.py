"""Bounded memory on huge inputs: a huge profile or dataset text is refused at start with one line,
and a reply longer than ``max_tokens`` allows is cut (``docs/reliability.md``, "Memory ceiling")."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage

from msc_graph.cli.batch import main
from msc_graph.data import DatasetError, ProfileError, jsonfile, load_dataset_problems, load_profiles
from msc_graph.llm import REPLY_CHARS_PER_TOKEN, cap_reply

BIG = jsonfile.MAX_FIELD_CHARS + 1


def test_a_profile_with_a_huge_preference_is_refused_naming_it(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"i": 0, "persona": "ok", "preferences": ["short", "x" * BIG]}]))
    with pytest.raises(ProfileError, match=r"entry 0 \(preferences\.1\) holds 100,001 characters, more than the 100,000"):
        load_profiles(path)
    path.write_text(json.dumps([{"i": 0, "persona": "x" * (BIG - 1), "preferences": ["short"]}]))
    assert load_profiles(path)[0].persona  # at the limit: fine


def test_a_dataset_file_or_cache_with_a_huge_problem_is_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "solution": "2"}) + "\n" + json.dumps({"problem": "y" * BIG, "solution": "4"}))
    with pytest.raises(DatasetError, match=r"entry 1 \(problem\) holds 100,001 characters"):
        load_dataset_problems(str(path), 1)
    cache = tmp_path / "cache" / "math-500"
    cache.mkdir(parents=True)
    (cache / "testset_size1_seed42.json").write_text(json.dumps([{"problem": "p", "solution": "s" * BIG}]))
    with pytest.raises(DatasetError, match=r"item 0 \(solution\) holds 100,001"):
        load_dataset_problems("math-500", 1, cache_dir=tmp_path / "cache", allow_download=False)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"i": 0, "persona": "ok", "preferences": ["a"]}]) + " " * 2**20)
    monkeypatch.setattr(jsonfile, "MAX_INPUT_FILE_BYTES", 2**20)
    monkeypatch.setattr("pathlib.Path.read_text", lambda *a, **k: pytest.fail("read a file over the limit"))
    with pytest.raises(ProfileError, match=r"is 1 MB, more than the 1 MB an input file may be"):
        load_profiles(path)


def test_the_batch_command_refuses_a_huge_profile_in_one_line_writing_nothing(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"i": 0, "persona": "x" * BIG, "preferences": ["a"]}]))
    out = tmp_path / "out" / "r.jsonl"
    argv = ["--dataset", "demo", "--eval_size", "1", "--profiles", str(path), "--api-base", "http://127.0.0.1:9/v1", "--model", "m",
            "--output_file", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: profile file") and "(persona) holds 100,001 characters" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_reply_longer_than_max_tokens_allows_is_cut_as_a_length_stop():
    msg = AIMessage(content="z" * 1_000_000, response_metadata={"finish_reason": "stop"})
    cap_reply(msg, 2048)
    assert len(msg.content) == REPLY_CHARS_PER_TOKEN * 2048 and msg.response_metadata["finish_reason"] == "length"
    ok = AIMessage(content="fine", response_metadata={"finish_reason": "stop"})
    cap_reply(ok, 2048)
    assert ok.content == "fine" and ok.response_metadata["finish_reason"] == "stop"
