"""Reliability: injected server faults, exhausted retries, SIGKILL mid-run, bad input, secrets.

Every run here is the real ``runners/batch.py`` over real HTTP against the fault-injecting server
(``msc_graph.testing.fault_server``), with a real embedded Chroma store for memory runs.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msc_graph.data import load_dataset_problems
from msc_graph.memory.access import StoreLocator, store_for
from msc_graph.results import read_records
from msc_graph.testing.fault_server import FAULTS
from tests.helpers import (
    DATASETS_DIR,
    PROFILES_FILE,
    REPO,
    assert_complete,
    batch_args,
    cli_args,
    fault_server,
    injected,
    require_shared,
    run_cli,
    start_scripted_server,
)

pytestmark = pytest.mark.integration

MEMORY = ["--experiment_type", "agent_with_memory"]


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("kind", FAULTS)
def test_each_fault_kind_is_retried_until_the_session_succeeds(kind, tmp_path):
    server = fault_server("--fault", f"{kind}=0.25", "--hang-s", "4", "--seed", "3")
    try:
        out = tmp_path / "r.jsonl"
        res = run_cli(*batch_args(server, out), *MEMORY, "--concurrency", "1", "--timeout", "1", timeout=300)
        counts = injected(server)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    assert counts.get(kind, 0) > 0, f"no {kind} fault was injected"
    records = assert_complete(out, 2, 2)
    assert [r["failure"] for r in records] == [None] * 4, [r["failure"] for r in records]
    if kind == "surrogate":  # a reply no UTF-8 file can hold: written escaped, and the session marked
        assert any(r.get("text_escaped") for r in records)


def test_mixed_faults_under_concurrency_lose_nothing(tmp_path):
    server = fault_server("--fault-rate", "0.05", "--hang-s", "5", "--latency", "0.01")
    try:
        out = tmp_path / "r.jsonl"
        res = run_cli(*batch_args(server, out, users=60, eval_size=2), *MEMORY, "--concurrency", "30", "--timeout", "2", timeout=600)
        counts = injected(server)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    assert sum(counts.values()) >= 20 and len(counts) >= 8
    records = assert_complete(out, 60, 2)
    failed = [r for r in records if r["failure"]]
    assert all(r["failure"]["stage"] and r["failure"]["reason"] for r in failed)
    assert all(r["task_success"] is None for r in failed)
    # the summary's failure count is the records' count, and averages cover completed sessions only
    table = res.stdout.split("Per session index")[0]
    all_row = next(line for line in table.splitlines() if line.startswith("all"))
    assert int(all_row.split()[1]) == 120 - len(failed) and all_row.split()[-1] == str(len(failed))


def test_exhausted_retries_are_recorded_failures_and_other_users_go_on(tmp_path):
    server = fault_server("--fault", "500=0.12", "--seed", "7")
    try:
        out = tmp_path / "r.jsonl"
        res = run_cli(*batch_args(server, out, users=6, eval_size=2), "--max-retries", "0", "--concurrency", "1",
                      "--max-failure-rate", "1", timeout=300)  # fmt: skip
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    records = assert_complete(out, 6, 2)
    failed = [r for r in records if r["failure"]]
    done = [r for r in records if not r["failure"]]
    assert failed and done, "expected some sessions to fail and others to finish"
    for r in failed:
        assert r["failure"]["stage"] in ("user", "agent", "judge") and "500" in r["failure"]["reason"]
        assert r["task_success"] is None and r["ended_by"] == "failure"
    all_row = next(line for line in res.stdout.splitlines() if line.startswith("all"))
    assert all_row.split()[-1] == str(len(failed))  # the summary counts them as failures


def test_retries_are_bounded_in_time(tmp_path):
    server = fault_server("--fault", "hang=1.0", "--hang-s", "60")
    try:
        out = tmp_path / "r.jsonl"
        start = time.monotonic()
        res = run_cli(*batch_args(server, out, users=1, eval_size=1), "--timeout", "1", "--max-retries", "2",
                      "--max-failure-rate", "1", timeout=120)  # fmt: skip
        wall = time.monotonic() - start
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    (record,) = read_records(out)
    assert record["failure"]["stage"] == "user" and "Timeout" in record["failure"]["reason"]
    # 3 attempts x 1 s timeout + backoff (at most 8 s each) + process start: far below the 60 s hang
    assert wall < 40, wall


def test_a_failed_memory_session_leaves_the_notes_unchanged(tmp_path):
    """A session whose replies stay unusable (a content failure) fails alone: the user goes on."""
    second_problem = load_dataset_problems("demo", 3).problems[1]["problem"]
    server = fault_server("--fail-when", second_problem[:40], "--fail-with", "not_json")
    try:
        out = tmp_path / "r.jsonl"
        res = run_cli(*batch_args(server, out, users=1, eval_size=3), *MEMORY, "--max-retries", "0",
                      "--max-failure-rate", "1", timeout=300)  # fmt: skip
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr
    first, failed, third = sorted(assert_complete(out, 1, 3), key=lambda r: r["session_index"])
    assert first["failure"] is None and first["notes_after"], "the first session should have learned a note"
    assert failed["failure"]["stage"] == "user" and failed["failure"]["kind"] == "content"
    assert failed["notes_before"] == failed["notes_after"] == first["notes_after"]
    assert failed["reflection"] is None  # no reflection on a failed session
    assert third["failure"] is None and third["notes_before"] == first["notes_after"]
    store = store_for(StoreLocator(path=str(out) + ".memory", namespace=first["settings_hash"]))
    assert store.list(0) == third["notes_after"]


# --------------------------------------------------------------------------- crashes


def test_twenty_sigkills_of_a_memory_run_each_resumed(tmp_path):
    require_shared()
    server = start_scripted_server("--latency", "0.05")
    rng = random.Random(2026)
    users, sessions = 4, 3

    def command(out: Path) -> list[str]:
        return [
            sys.executable, str(REPO / "runners" / "batch.py"), *MEMORY, "--dataset", "logiqa",
            # three slots for four users: their sessions end at different moments, so kills land between any two records
            "--eval_size", str(sessions), "--users", str(users), "--concurrency", "3",
            "--profiles", str(PROFILES_FILE), "--data-dir", str(DATASETS_DIR), *cli_args(server.url),
            "--output_file", str(out), "--no-progress",
        ]  # fmt: skip

    def comparable(r: dict) -> tuple:
        return (r["transcript"], r["task_success"], r["user_effort"], r["notes_before"], r["notes_after"])

    try:
        reference = tmp_path / "reference.jsonl"
        started = time.monotonic()
        assert subprocess.run(command(reference), capture_output=True, timeout=300).returncode == 0
        full_run_s = time.monotonic() - started
        expected = {(r["user_id"], r["session_index"]): comparable(r) for r in read_records(reference)}
        partial_at_kill, killed = [], 0
        for trial in range(20):
            out = tmp_path / f"trial{trial}" / "r.jsonl"
            proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if trial % 5 == 0:  # during start-up, before any record
                time.sleep(rng.uniform(0.1, 0.8))
            else:  # once k records are written, at a random moment before the next ones
                k = rng.randrange(1, users * sessions)
                deadline = time.monotonic() + full_run_s * 5
                while time.monotonic() < deadline and proc.poll() is None:
                    if out.exists() and len(out.read_bytes().splitlines()) >= k:
                        break
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.3))
            killed += proc.poll() is None  # (a run can finish in the last instant; it is resumed all the same)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            partial_at_kill.append(len(out.read_bytes().splitlines()) if out.exists() else 0)
            if trial % 4 == 3 and out.exists():  # a kill in the middle of a write leaves a torn line
                with open(out, "ab") as fh:
                    fh.write(b'{"user_id": 1, "session_index": 2, "transcr')
            resumed = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
            assert resumed.returncode == 0, f"trial {trial}: {resumed.stderr[-2000:]}"
            lines = out.read_text().splitlines()
            assert all(json.loads(line) for line in lines), f"trial {trial}: a corrupt line survived"
            records = assert_complete(out, users, sessions)
            assert {(r["user_id"], r["session_index"]): comparable(r) for r in records} == expected, f"trial {trial}"
            store = store_for(StoreLocator(path=str(out) + ".memory", namespace=records[0]["settings_hash"]))
            for uid in range(users):
                last = max((r for r in records if r["user_id"] == uid), key=lambda r: r["session_index"])
                assert store.list(uid) == last["notes_after"], f"trial {trial}: store and records disagree for user {uid}"
        # the kills landed at different moments: before the first record and between later ones
        assert killed >= 16 and min(partial_at_kill) == 0 and len(set(partial_at_kill)) >= 5, (killed, partial_at_kill)
    finally:
        server.stop()


# --------------------------------------------------------------------------- bad input


def _profiles(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profiles.json"
    path.write_text(text)
    return str(path)


BAD_INPUT = {
    "malformed profiles": (lambda t: ["--profiles", _profiles(t, "{not json")], "profiles"),
    "empty profiles": (lambda t: ["--profiles", _profiles(t, "")], "empty"),
    "profile without preferences": (lambda t: ["--profiles", _profiles(t, json.dumps([{"i": 0, "persona": "x"}]))], "preferences"),
    "missing profile file": (lambda t: ["--profiles", str(t / "nope.json")], "does not exist"),
    "missing config file": (lambda t: ["--config", str(t / "nope.toml")], "nope.toml"),
    "users and user ids": (lambda t: ["--user-ids", "0,1"], "not allowed with argument"),
    "bad shard": (lambda t: ["--shard", "5/2"], "--shard"),
    "zero concurrency": (lambda t: ["--concurrency", "0"], "--concurrency"),
    "unknown memory mode": (lambda t: ["--memory", "telepathy"], "unknown memory design 'telepathy'"),
    "eval size beyond the cache offline": (
        lambda t: ["--dataset", "math-500", "--eval_size", "50", "--offline", "--data-dir", str(DATASETS_DIR)], "math-500"
    ),
    "missing cache offline": (lambda t: ["--dataset", "medqa", "--offline", "--data-dir", str(t / "no-cache")], "medqa"),
    "profiles not UTF-8": (lambda t: ["--profiles", _binary(t / "p.json")], "not UTF-8"),
    "dataset not UTF-8": (lambda t: ["--dataset", _binary(t / "d.json")], "not UTF-8"),
    "embedding model without an endpoint": (lambda t: [*MEMORY, "--embedding-model", "foo"], "--embedding-api-base"),
    "embeddings endpoint down": (
        lambda t: [*MEMORY, "--embedding-model", "foo", "--embedding-api-base", "http://127.0.0.1:9/v1"], "cannot embed"
    ),
    "export over the results": (lambda t: ["--export-published", str(t / "out" / "r.jsonl")], "input of this command"),
    "batch size and concurrency": (lambda t: ["--batch_size", "4", "--concurrency", "8"], "conflict"),
    "memory folder is a file": (lambda t: [*MEMORY, "--memory-dir", _file(t / "m")], "in the way"),
    "published code missing": (lambda t: ["--protocol", "published", "--published-code", str(t)], "--published-code"),
}


def _binary(path: Path) -> str:
    path.write_bytes(b'[{"problem": "caf\xe9", "solution": "1"}]')
    return str(path)


def _file(path: Path) -> str:
    path.write_text("")
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_nothing_written(case, tmp_path, scripted_server):
    make_extra, needle = BAD_INPUT[case]
    out = tmp_path / "out" / "r.jsonl"
    res = run_cli(*batch_args(scripted_server, out, users=1, eval_size=1), *make_extra(tmp_path), timeout=120)
    assert res.returncode == 2, (case, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (case, res.stderr)
    assert needle in lines[0], (case, lines[0])
    assert not out.parent.exists(), f"{case}: something was written"


def test_a_person_without_a_terminal_is_one_line(tmp_path, scripted_server):
    out = tmp_path / "out" / "r.jsonl"
    res = subprocess.run([sys.executable, str(REPO / "runners" / "batch.py"), *batch_args(scripted_server, out, users=1, eval_size=1),
                          "--user-kind", "human"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: __import__("os").close(0))  # fmt: skip
    assert res.returncode == 2 and res.stderr.startswith("error: --user-kind human needs") and res.stderr.count("\n") == 1
    assert not out.parent.exists()


# --------------------------------------------------------------------------- secrets


def test_api_keys_never_reach_any_output(tmp_path):
    flag_key, env_key, wrong_key = "sk-flag-7f3a9c1e55", "sk-env-b8d2e4a611", "sk-wrong-0c9e7d3b42"
    texts: list[str] = []
    for key, via in ((flag_key, "flag"), (env_key, "env")):
        server = fault_server("--require-key", key, "--fault-rate", "0.1", "--seed", "5")
        try:
            out = tmp_path / via / "r.jsonl"
            args = batch_args(server, out, key=key if via == "flag" else "")
            if via == "env":
                args = [a for i, a in enumerate(args) if not (a.endswith("_api_key") or args[i - 1].endswith("_api_key"))]
            env = {"OPENAI_API_KEY": env_key} if via == "env" else {}
            res = run_cli(*args, *MEMORY, "--timeout", "2", env=env, timeout=300)
            assert res.returncode == 0, res.stderr  # the server accepted the key: it was sent
            assert all(r["failure"] is None for r in read_records(out))
            texts += [res.stdout, res.stderr]
            # a wrong key: the preflight error and the recorded failures must not show it either
            res = run_cli(*batch_args(server, tmp_path / via / "w1.jsonl", key=wrong_key), timeout=60)
            assert res.returncode == 2 and "HTTP 401" in res.stderr
            texts += [res.stdout, res.stderr]
            res = run_cli(*batch_args(server, tmp_path / via / "w2.jsonl", key=wrong_key), "--skip-preflight",
                          "--max-failure-rate", "1", timeout=120)  # fmt: skip
            assert res.returncode == 0 and all(r["failure"] for r in read_records(tmp_path / via / "w2.jsonl"))
            texts += [res.stdout, res.stderr]
        finally:
            server.stop()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".manifest.json") for p in written) and any(".memory" in str(p) for p in written)
    for secret in (flag_key, env_key, wrong_key):
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret} leaked into {path}"
        assert not any(secret in t for t in texts), f"{secret} leaked into the console output"


def test_fault_server_refuses_non_loopback_hosts():
    res = subprocess.run([sys.executable, "-m", "msc_graph.testing.fault_server", "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode != 0 and "loopback only" in res.stderr
