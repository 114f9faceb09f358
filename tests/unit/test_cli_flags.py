"""The batch command line: one flag per endpoint, both spellings, published names, config files,
and one clear line (exit 2, nothing written) for every bad value."""

from __future__ import annotations

import pytest

from msc_graph.cli.batch import main, parse_args, settings_from_args


def settings(*argv: str):
    return settings_from_args(parse_args(list(argv)))


def test_one_flag_points_every_role_at_one_server_and_role_flags_override():
    s = settings("--api-base", "http://h:1", "--model", "hosted_vllm/m", "--judge-model", "j").session
    assert (s.user_api_base, s.agent_api_base, s.judge_api_base) == ("http://h:1/v1",) * 3
    assert (s.user_model, s.agent_model, s.judge_model) == ("m", "m", "j")


def test_published_flags_and_both_spellings_mean_the_same_setting():
    published = settings("--collaborator_model_name", "a", "--user_api_base", "http://u", "--eval_size", "3",
                         "--batch_size", "7", "--output_file", "o.jsonl")  # fmt: skip
    ours = settings("--agent-model", "a", "--user-api-base", "http://u", "--eval-size", "3",
                    "--concurrency", "7", "--output-file", "o.jsonl")  # fmt: skip
    assert published == ours
    assert settings("--max-turns", "4").session.max_turns == settings("--max_turns", "4").session.max_turns == 4
    assert settings("--retrieval_k", "2", "--experiment-type", "agent_with_memory").session.retrieval_k == 2


def test_memory_follows_the_experiment_type_and_its_folder_the_output():
    s = settings("--experiment_type", "agent_with_memory", "--output_file", "x/r.jsonl")
    assert s.session.memory == "retrieval" and s.session.memory_dir == "x/r.jsonl.memory"
    assert settings("--experiment_type", "agent_with_memory", "--memory", "notes").session.memory == "notes"


def test_api_keys_are_secrets_per_role():
    s = settings("--api-key", "k1", "--judge_api_key", "k2")
    assert s.api_keys["user"].get_secret_value() == "k1" and s.api_keys["judge"].get_secret_value() == "k2"
    assert "k1" not in str(s.public_dict()) and "k2" not in repr(s)


def test_config_file_takes_published_and_our_names(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('collaborator_model_name = "a"\nmax-turns = 3\nbatch_size = 4\n')
    s = settings("--config", str(cfg), "--max_turns", "5")
    assert s.session.agent_model == "a" and s.session.max_turns == 5 and s.concurrency == 4


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--timeout", "0"], "--timeout"),
        (["--timeout", "-1"], "--timeout"),
        (["--max-retries", "-1"], "--max-retries"),
        (["--parse-retries", "-1"], "--parse-retries"),
        (["--experiment_type", "agent_with_memory", "--retrieval-k", "0"], "--retrieval-k"),
        (["--experiment_type", "agent_with_memory", "--retrieval-threshold", "nan"], "--retrieval-threshold"),
        (["--experiment_type", "agent_with_memory", "--retrieval-threshold", "2.0"], "--retrieval-threshold"),
        (["--user-ids", ",,"], "names no user"),
        (["--batch_size", "3", "--concurrency", "4"], "conflict"),
        (["--concurrency", "0"], "at least 1"),
        (["--max-failure-rate", "2"], "--max-failure-rate"),
        (["--memory", "no such design"], "--memory"),
        (["--experiment_type", "agent_without_memory", "--memory", "retrieval"], "contradicts"),
        (["--eval-sise", "3"], "did you mean --eval-size"),
        (["--user", "robot"], "invalid choice"),
    ],
)
def test_nonsense_values_are_one_line_exit_2_and_nothing_written(argv, says, tmp_path, capsys):
    out = tmp_path / "out" / "r.jsonl"
    assert exit_code([*argv, "--output_file", str(out), "--skip-preflight", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert says in err and err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert not out.parent.exists()


def exit_code(argv: list[str]) -> int:
    """``main``'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_the_mock_backend_serves_every_role_itself(tmp_path, capsys):
    assert main(["--backend", "mock", "--judge-model", "x", "--output_file", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err == "error: --backend mock serves every role itself; drop --judge-model\n"
    assert not (tmp_path / "o.jsonl").exists()


def test_a_cache_folder_that_is_a_file_is_bad_input_and_nothing_is_written(tmp_path, capsys):
    (tmp_path / "cache").write_text("")
    out = tmp_path / "o.jsonl"
    assert main(["--cache", str(tmp_path / "cache"), "--skip-preflight", "--users", "1", "--eval_size", "1",
                 "--output_file", str(out), "--no-progress"]) == 2  # fmt: skip
    assert capsys.readouterr().err.endswith(f"error: --cache {tmp_path / 'cache'} is a file; give a folder\n")
    assert not out.exists() and not (tmp_path / "o.jsonl.manifest.json").exists()
