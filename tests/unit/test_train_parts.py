"""Reflection training's parts that need no model: the examples (train split only, the design's own
prompt, cumulative targets), the rewards (format levels; the coverage judge over real HTTP, its
cache and its failures), the command's bad input, and --reflection-model reaching the design."""

from __future__ import annotations

import asyncio
import json

import pytest

from msc_graph.cli.train_reflection import judge_config, main
from msc_graph.config import RoleConfig, RunSettings, SessionContext
from msc_graph.memory.designs.notes import reflection_messages
from msc_graph.prompts import REFLECTION_PROMPT
from msc_graph.train.data import TrainingDataError, build_examples, read_rows
from msc_graph.train.rewards import CoverageJudge, format_reward, format_score
from msc_graph.train.settings import TrainSettings
from tests.helpers import start_scripted_server

PREFS = ["Answer in bullet points.", "Keep replies under fifty words.", "Always include an example."]
TRANSCRIPT = [{"role": "assistant", "content": "How can I help you?"}, {"role": "user", "content": "Please use bullet points."}]


def row(uid: int, k: int, enforced: list[int], notes=None) -> dict:
    return {"user_id": uid, "session_index": k, "preferences": PREFS, "notes_before": notes or [],
            "transcript": TRANSCRIPT, "enforced": enforced}  # fmt: skip


def test_examples_use_the_designs_prompt_and_accumulate_what_was_enforced():
    note = {"preference": "bullets", "evidence": "", "how_to_satisfy": ""}
    examples = build_examples([row(0, 0, []), row(0, 1, [0], [note]), row(0, 2, [2]), row(1, 0, [1])])
    assert [(e.user_id, e.session_index, e.target) for e in examples] == [(0, 1, [0]), (0, 2, [0, 2]), (1, 0, [1])]
    assert examples[0].prompt == reflection_messages([note], TRANSCRIPT)
    assert examples[0].prompt[0]["content"].startswith(REFLECTION_PROMPT.split("{notes}")[0])
    assert "1. bullets" in examples[0].prompt[0]["content"] and "User: Please use bullet points." in examples[0].prompt[0]["content"]


def _results(tmp_path, split: str | None):
    path = tmp_path / "r.jsonl"
    rec = {**row(0, 0, []), "settings_hash": "h", "turns": [], "notes_after": []}
    path.write_text(json.dumps(rec) + "\n")
    if split is not None:
        (tmp_path / "r.jsonl.manifest.json").write_text(json.dumps({"dataset": {"split": split}}))
    return path


def test_only_train_split_sessions_are_read(tmp_path):
    with pytest.raises(TrainingDataError, match="the test split"):
        read_rows(_results(tmp_path, "test"))
    (tmp_path / "x").mkdir()
    with pytest.raises(TrainingDataError, match="no manifest"):
        read_rows(_results(tmp_path / "x", None))
    assert len(read_rows(_results(tmp_path, "train"))) == 1
    export = tmp_path / "e.jsonl"
    base = {"user_id": 0, "session_index": 0, "preferences": PREFS, "notes_before": [], "transcript": TRANSCRIPT,
            "rewards": {"enforced_preferences": [1]}}  # fmt: skip
    export.write_text(json.dumps({**base, "split": "train"}) + "\n" + json.dumps({**base, "split": "test"}) + "\n")
    with pytest.raises(TrainingDataError, match=r"e.jsonl:2: a session of the test split"):
        read_rows(export)


def test_format_reward_levels():
    good = json.dumps({"reasoning": "r", "notes": [{"preference": "bullets", "evidence": "", "how_to_satisfy": ""}]})
    assert format_score(good) == 1.0
    assert format_score('{"reasoning": "r"}') == 0.5  # an object, not what the design parses
    assert format_score("I will keep notes.") == 0.0
    assert format_reward([[{"role": "assistant", "content": good}], "no"]) == [1.0, 0.0]


def test_coverage_judge_grades_over_http_caches_and_counts_failures(tmp_path):
    server = start_scripted_server()
    try:
        cfg = RoleConfig(role="judge", base_url=server.url, model="scripted", temperature=0.0, max_retries=0, parse_retries=0)
        judge = CoverageJudge(cfg, 4, tmp_path / "cache.jsonl")
        notes = json.dumps({"reasoning": "", "notes": [{"preference": "The user wants bullet points", "evidence": "", "how_to_satisfy": ""}]})
        completions = [notes, notes, "I noted nothing.", "Use bullet points; keep replies under fifty words.", '{"reasoning": "", "notes": []}']
        scores = judge(completions, [PREFS] * 5, [[0, 1]] * 5)
        # "bullet" covers preference 1 of the two targets; an unparseable reply is graded on its
        # text (its format reward is what punishes it); a reply that parses to no notes covers nothing
        assert scores == [0.5, 0.5, 0.0, 1.0, 0.0]
        assert judge.stats.calls + judge.stats.cache_hits == 4 and judge.stats.calls >= 3
        judge.close()
        again = CoverageJudge(cfg, 4, tmp_path / "cache.jsonl")  # a resumed run: the file answers
        assert again(completions[:1], [PREFS], [[0, 1]]) == [0.5] and again.stats.calls == 0
        again.close()
    finally:
        server.stop()
    dead = CoverageJudge(cfg, 4)  # the server is gone: counted, None (left out of the mean)
    assert asyncio.run_coroutine_threadsafe(dead.grade(notes, ["Always include an example."]), dead._loop).result() is None
    assert dead.stats.failures == 1
    dead.close()


def test_bad_input_is_one_error_line_and_nothing_written(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(_results(tmp_path, "test")), "--output-dir", str(out)]) == 2
    assert "error:" in capsys.readouterr().err and not out.exists()
    assert main([str(_results(tmp_path, "train")), "--num-generations", "3", "--output-dir", str(out)]) == 2
    assert "must be a multiple of --num-generations" in capsys.readouterr().err and not out.exists()


def test_dry_run_prints_the_study_plan_without_a_model(tmp_path, capsys):
    data = tmp_path / "e.jsonl"
    data.write_text(json.dumps({"user_id": 0, "session_index": 0, "preferences": PREFS, "notes_before": [],
                                "transcript": TRANSCRIPT, "rewards": {"enforced_preferences": [0]}, "split": "train"}) + "\n")  # fmt: skip
    assert main([str(data), "--use-vllm", "--dry-run", "--output-dir", str(tmp_path / "o")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["settings"]["model"] == "Qwen/Qwen2.5-7B-Instruct" and plan["plan"]["completions_per_step"] == 32
    assert 40 < plan["plan"]["gpu_memory_gib"]["total"] < 80 and not (tmp_path / "o").exists()
    assert judge_config(TrainSettings(judge_api_base="http://h:1", judge_model="hosted_vllm/j")).base_url == "http://h:1/v1"


def test_reflection_model_reaches_the_design_and_keys_results_only_when_set():
    from msc_graph.data import load_dataset_problems
    from msc_graph.graphs.memory import design_for
    from msc_graph.run.plan import result_settings

    ctx = SessionContext(memory="notes", reflection_model="hosted_vllm/base:refl", reflection_api_base="http://a:9")
    settings = design_for(ctx).settings
    assert (settings.reflector.model, settings.reflector.base_url) == ("base:refl", "http://a:9/v1")
    assert settings.agent.model == ctx.agent_model  # the agent itself is unchanged
    plain = design_for(SessionContext(memory="notes")).settings
    assert plain.reflector == plain.agent
    data = load_dataset_problems("demo", 2)
    assert "reflection_model" not in result_settings(RunSettings(dataset="demo"), data)
    with_it = RunSettings(dataset="demo", experiment_type="agent_with_memory", session=ctx)
    assert result_settings(with_it, data)["reflection_model"] == "base:refl"
