"""runners/batch.py end to end over real HTTP against a loopback OpenAI-compatible server."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from msc_graph.results import read_records
from tests.helpers import (
    DATASETS_DIR,
    PROFILES_FILE,
    REPO,
    cli_args,
    require_shared,
    run_cli,
    start_scripted_server,
)

REQUIRED_KEYS = {
    "user_id", "session_index", "dataset", "problem_id", "problem", "solution", "persona", "preferences",
    "transcript", "turns", "draft_answer", "verdict", "task_success", "user_effort", "length", "usage",
    "timing", "failure",
}  # fmt: skip
MEMORY_KEYS = {"notes_before", "notes_after", "retrieved"}


def published_command(url: str, experiment: str, out: str) -> list[str]:
    """The published README's command, flag for flag, plus --users/--profiles/--data-dir."""
    return [
        "--experiment_type", experiment, "--dataset", "math-500", "--eval_size", "2", "--max_turns", "10",
        "--batch_size", "50", *cli_args(url), "--output_file", out,
        "--users", "3", "--profiles", str(PROFILES_FILE), "--data-dir", str(DATASETS_DIR), "--no-progress",
    ]  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("experiment", ["agent_without_memory", "agent_with_memory"])
def test_published_command_runs_against_a_loopback_server(tmp_path, scripted_server, experiment):
    require_shared()
    out = tmp_path / "outputs" / "math_500.jsonl"
    secret = "sk-test-SECRET-123456"
    args = published_command(scripted_server.url, experiment, str(out))
    args[args.index("--user_api_key") + 1] = secret
    res = run_cli(*args, "--export-published", str(tmp_path / "published.jsonl"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    records = read_records(out)
    assert len(records) == 6
    assert {(r["user_id"], r["session_index"]) for r in records} == {(u, s) for u in range(3) for s in range(2)}
    for r in records:
        assert REQUIRED_KEYS <= r.keys()
        assert r["failure"] is None
        assert r["task_success"] == 1 and r["length"] == 6
        # the scripted user enforces bullet points until the agent knows; memory teaches it after session 0
        learned = experiment == "agent_with_memory" and r["session_index"] > 0
        assert r["user_effort"] == (0 if learned else 1)
        assert r["dataset"] == "math-500" and r["usage"]["user"]["cached_prompt_tokens"] > 0
        if experiment == "agent_with_memory":
            assert MEMORY_KEYS <= r.keys()
    if experiment == "agent_with_memory":
        later = [r for r in records if r["session_index"] == 1]
        assert all(r["notes_before"] and r["retrieved"][0]["notes"] for r in later)
    manifest = json.loads((out.parent / "math_500.jsonl.manifest.json").read_text())
    assert manifest["finished"] and manifest["dataset"]["source"].endswith("testset_size20_seed42.json")
    assert manifest["config"]["user"]["model"] == "scripted" and "langgraph" in manifest["packages"]
    published = [json.loads(line) for line in (tmp_path / "published.jsonl").read_text().splitlines()]
    assert [p["i"] for p in published] == [0, 1, 2]
    assert published[0]["evaluation"]["average_accuracy"] == 1.0
    assert len(published[0]["generated_conversations"]) == 2
    assert "TS %" in res.stdout and "session 1" in res.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert secret.encode() not in path.read_bytes(), f"API key leaked into {path}"
    assert secret not in res.stdout + res.stderr


@pytest.mark.integration
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    require_shared()
    server = start_scripted_server("--latency", "0.03")
    try:
        def command(out):
            return [
                sys.executable, str(REPO / "runners" / "batch.py"), "--experiment_type", "agent_with_memory",
                "--dataset", "logiqa", "--eval_size", "4", "--users", "6", "--concurrency", "3",
                "--profiles", str(PROFILES_FILE), "--data-dir", str(DATASETS_DIR), *cli_args(server.url),
                "--output_file", str(out), "--no-progress",
            ]  # fmt: skip

        reference = tmp_path / "ref" / "r.jsonl"
        assert subprocess.run(command(reference), capture_output=True, timeout=300).returncode == 0

        out = tmp_path / "crash" / "r.jsonl"
        kills = 0
        for _ in range(3):
            proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            start = len(read_records(out)) if out.exists() else 0
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                if out.exists() and len(out.read_bytes().splitlines()) >= start + 4:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.01)
            proc.wait(timeout=60)
        # simulate a torn final line as a kill in the middle of a write would leave it
        with open(out, "ab") as fh:
            fh.write(b'{"user_id": 5, "session_index": 3, "transcr')
        final = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
        assert kills >= 1
    finally:
        server.stop()

    def key(r):
        return (r["user_id"], r["session_index"])

    ref = read_records(reference)
    got = read_records(out)
    assert len(got) == len(ref) == 24
    assert len({key(r) for r in got}) == 24, "duplicate records after resume"

    def comparable(r):
        return (r["transcript"], r["task_success"], r["user_effort"], r["length"], r["notes_before"], r["notes_after"])

    by_key = {key(r): comparable(r) for r in ref}
    assert all(by_key[key(r)] == comparable(r) for r in got)


@pytest.mark.integration
def test_settings_mismatch_on_existing_output_is_refused(tmp_path, scripted_server):
    out = tmp_path / "r.jsonl"
    base = ["--dataset", "demo", "--eval_size", "1", "--users", "1", *cli_args(scripted_server.url),
            "--output_file", str(out), "--no-progress"]  # fmt: skip
    assert run_cli(*base).returncode == 0
    before = out.read_bytes()
    res = run_cli(*base, "--max_turns", "4")
    assert res.returncode == 2
    assert "different settings" in res.stderr and "--overwrite" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert out.read_bytes() == before
    assert run_cli(*base, "--max_turns", "4", "--overwrite").returncode == 0
    assert len(read_records(out)) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "no-such-set"], "unknown dataset 'no-such-set'"),
        (["--user_api_base", "http://127.0.0.1:9/v1"], "did not answer GET /models"),
        (["--profiles", "/nonexistent/profiles.json"], "does not exist"),
        (["--experiment_type", "agent_without_memory", "--memory", "retrieval"], "contradicts"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_nothing_written(tmp_path, scripted_server, extra, message):
    out = tmp_path / "out" / "r.jsonl"
    args = ["--dataset", "demo", "--eval_size", "1", "--users", "1", *cli_args(scripted_server.url),
            "--output_file", str(out), "--no-progress"]  # fmt: skip
    res = run_cli(*args, *extra, timeout=60)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_wrong_model_name_is_named(tmp_path, scripted_server):
    args = ["--dataset", "demo", "--eval_size", "1", "--users", "1", *cli_args(scripted_server.url),
            "--collaborator_model_name", "not-served", "--output_file", str(tmp_path / "r.jsonl")]  # fmt: skip
    res = run_cli(*args, timeout=60)
    assert res.returncode == 2 and "does not serve model 'not-served'" in res.stderr
    assert "(agent)" in res.stderr and "fix --agent-model (or --collaborator_model_name)" in res.stderr  # the role that is wrong
    assert not (tmp_path / "r.jsonl").exists()


def test_config_file_supplies_flags_and_flags_override(tmp_path, scripted_server):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'dataset = "demo"\neval_size = 2\nusers = 2\nuser_api_base = "{scripted_server.url}"\n'
        f'collaborator_api_base = "{scripted_server.url}"\njudge_api_base = "{scripted_server.url}"\n'
        'user_model_name = "scripted"\ncollaborator_model_name = "scripted"\njudge_model_name = "scripted"\n'
    )
    out = tmp_path / "r.jsonl"
    res = run_cli("--config", str(cfg), "--eval_size", "1", "--output_file", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert len(read_records(out)) == 2  # users from the file, eval_size from the flag
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasett: demo\n")
    res = run_cli("--config", str(bad), "--output_file", str(out))
    assert res.returncode == 2 and "unknown keys ['datasett']" in res.stderr


def test_help_explains_every_flag():
    res = run_cli("--help")
    assert res.returncode == 0
    for flag in ("--experiment_type", "--batch_size", "--judge_api_key", "--user-ids", "--max-inflight-requests",
                 "--config", "--overwrite", "--export-published", "--backend", "--memory", "--chroma-url"):  # fmt: skip
        assert flag in res.stdout


def test_one_session_command_prints_transcript_and_metrics(scripted_server):
    require_shared()
    res = subprocess.run(
        [sys.executable, str(REPO / "runners" / "session.py"), "--api-base", scripted_server.url, "--model",
         "hosted_vllm/scripted", "--profiles", str(PROFILES_FILE), "--user", "0", "--dataset", "math-500",
         "--problem", "0", "--data-dir", str(DATASETS_DIR)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("AGENT: How can I help you?")
    assert "task_success=1  user_effort=1  length=6" in res.stdout


def _progress_run(tmp_path, *extra: str, terminal: bool, columns: int = 160) -> tuple[str, Path, str]:
    """A two-user memory run on a slow scripted server; its stderr as a log file gets it (a pipe) or
    as a terminal shows it (a pseudo-terminal)."""
    server = start_scripted_server("--latency", "0.2")
    out = tmp_path / "r.jsonl"
    args = [sys.executable, str(REPO / "runners" / "batch.py"), "--experiment_type", "agent_with_memory", "--dataset", "demo",
            "--eval_size", "2", "--users", "2", "--api-base", server.url, "--model", "scripted", "--concurrency", "2",
            "--output_file", str(out), *extra]  # fmt: skip
    try:
        if not terminal:
            res = subprocess.run(args, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
            return res.stderr, out, server.url
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))  # a new pty is 0 columns wide
        env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower, env=env)
        os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(leader, 65536):
                chunks.append(chunk)
        os.close(leader)
        assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
        return b"".join(chunks).decode(errors="replace"), out, server.url
    finally:
        server.stop()


def _check_progress(lines: list[str], out: Path, url: str) -> None:
    banner = "\n".join(lines[:6])
    for part in ("run: agent_with_memory on demo", "memory retrieval", "2 users x 2 = 4", f"agent: scripted at {url}",
                 f"output: {out}"):  # fmt: skip
        assert part in banner, banner
    moving = [line for line in lines if line.startswith("sessions ") and "in flight 2" in line]
    assert moving, "no line while sessions were in flight"  # activity before the first session ended
    last = [line for line in lines if line.startswith("sessions 4/4")][-1]
    for part in ("in flight 0", "TS 100.0%", "UE 0.50", "Len 6.0", "failed 0", "retried", "x429", "tok/s", "ETA"):
        assert part in last, last


def test_the_progress_line_in_a_log_is_plain_lines_at_the_interval(tmp_path):
    stderr, out, url = _progress_run(tmp_path, "--progress-every", "0.5", terminal=False)
    assert "\r" not in stderr and "|" not in stderr  # lines a log reader can tail, no bar redrawn in place
    lines = stderr.splitlines()
    _check_progress(lines, out, url)
    progress = [line for line in lines if line.startswith("sessions ")]
    assert progress[0].startswith("sessions 0/4, rate ?/min, ETA ?, in flight 0") and progress[-1].startswith("sessions 4/4")
    assert len(progress) < 40, progress  # every half second, not once per refresh or per session


def test_the_progress_line_on_a_terminal_is_one_line_redrawn(tmp_path):
    shown, out, url = _progress_run(tmp_path, terminal=True)
    # one line redrawn in place: a carriage return that does not end a line (a terminal shows every
    # newline as "\r\n", so a bare "\r" in the text would prove nothing)
    assert "\r" in shown.replace("\r\n", "\n")
    lines = [line for line in shown.replace("\r\n", "\n").replace("\r", "\n").splitlines() if line.strip()]
    _check_progress(lines, out, url)


def test_the_progress_line_on_a_terminal_of_width_0_fits_80_columns(tmp_path):
    """A terminal that reports 0 columns still gets the line, fitted to 80 columns, with done / total,
    the rate and the ETA in every drawing of it."""
    shown, _, _ = _progress_run(tmp_path, terminal=True, columns=0)
    drawn = [line.rstrip() for line in shown.replace("\r\n", "\n").replace("\r", "\n").splitlines()
             if line.startswith("sessions ")]  # fmt: skip
    assert drawn and drawn[-1].startswith("sessions 4/4 (100%)"), shown
    assert any("/min ETA" in line and "?/min" not in line for line in drawn), drawn  # a measured rate
    for line in drawn:
        assert len(line) < 80 and re.match(r"sessions \d/4 \(\d+%\) \S+/(min|h) ETA \S+", line), line
