"""Never lose or double a session: outages pause the run, one writer per output, a safe
--overwrite, retried infrastructure failures, honest exit codes and manifests.

Every run is the real ``runners/batch.py`` over real HTTP against the fault-injecting server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from msc_graph.data import load_dataset_problems
from msc_graph.results import manifest_path, read_records
from msc_graph.run.resume import latest_of_setting
from tests.helpers import REPO, Server, assert_complete, batch_args, fault_server, run_cli

pytestmark = pytest.mark.integration

MEMORY = ["--experiment_type", "agent_with_memory"]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "runners" / "batch.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_records(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} records in {out} (run exited: {proc.poll()})")


def outage(server: Server, seconds: float) -> None:
    httpx.post(server.url.removesuffix("/v1") + f"/control/outage?seconds={seconds}", timeout=5)


def test_an_outage_pauses_the_run_and_loses_nothing(tmp_path):
    """The server closes every connection for 12 s in the middle of a memory run: the sessions in
    flight are held, no new one starts, and the run ends with every session finished."""
    server = fault_server("--latency", "0.05")
    try:
        out = tmp_path / "r.jsonl"
        proc = start([*batch_args(server, out, users=8, eval_size=3), *MEMORY, "--concurrency", "8"])
        wait_for_records(out, 3, proc)
        outage(server, 12)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        server.stop()
    assert proc.returncode == 0, stderr
    records = assert_complete(out, 8, 3)
    assert all(r["failure"] is None for r in records)
    assert "fails every request: holding" in stderr and "answers again" in stderr


def test_an_outage_past_the_timeout_stops_the_run_and_a_rerun_continues(tmp_path):
    server = fault_server("--latency", "0.05")
    try:
        out = tmp_path / "r.jsonl"
        args = [*batch_args(server, out, users=6, eval_size=3), *MEMORY, "--concurrency", "6", "--outage-timeout", "4"]
        proc = start(args)
        wait_for_records(out, 2, proc)
        outage(server, 40)
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 4, stderr
        assert "--outage-timeout" in stderr and "rerun" in stderr and "Traceback" not in stderr
        manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
        assert manifest["ended"] == "outage"
        before = read_records(out)
        assert all(r["failure"] is None for r in before)  # held sessions were not recorded as failed
        outage(server, 0)
        res = run_cli(*args)
        assert res.returncode == 0, res.stderr
    finally:
        server.stop()
    assert_complete(out, 6, 3)


def test_an_infrastructure_failure_stops_a_memory_user_and_a_rerun_continues_from_it(tmp_path):
    """Session 2 of the user fails for good on the server's side (HTTP 500 while the server
    answers other requests): its later session does not run with the wrong notes; the run exits 3;
    a rerun against a healthy server runs session 2 again, then session 3."""
    problems = load_dataset_problems("demo", 3).problems
    out = tmp_path / "r.jsonl"
    server = fault_server("--fail-when", problems[1]["problem"][:40])
    try:
        res = run_cli(*batch_args(server, out, users=1, eval_size=3), *MEMORY, "--max-retries", "0", timeout=300)
    finally:
        server.stop()
    assert res.returncode == 3 and "sessions failed" in res.stderr
    first = read_records(out)
    assert [(r["session_index"], (r["failure"] or {}).get("kind")) for r in first] == [(0, None), (1, "infrastructure")]
    healthy = fault_server()
    try:
        res = run_cli(*batch_args(healthy, out, users=1, eval_size=3), *MEMORY, timeout=300)
    finally:
        healthy.stop()
    assert res.returncode == 0, res.stderr
    final = latest_of_setting(read_records(out), first[0]["settings_hash"])
    assert sorted(final) == [(0, 0, 0), (0, 1, 0), (0, 2, 0)] and all(r["failure"] is None for r in final.values())
    assert final[(0, 1, 0)]["notes_before"] == first[0]["notes_after"]  # it started from session 1's notes
    # the clean finish compacted the file: the failed attempt is gone, each session once, in order
    assert [(r["session_index"], r["failure"]) for r in read_records(out)] == [(0, None), (1, None), (2, None)]
    assert json.loads(manifest_path(out).read_text())["compacted"] == {"superseded_dropped": 1}


def test_a_second_runner_on_the_same_output_is_refused_at_once(tmp_path):
    server = fault_server("--latency", "0.3")
    try:
        out = tmp_path / "r.jsonl"
        args = [*batch_args(server, out, users=4, eval_size=3), "--concurrency", "2"]
        first = start(args)
        wait_for_records(out, 1, first)
        second = run_cli(*args, timeout=60)
        assert second.returncode == 2 and "being written by another run" in second.stderr
        assert f"pid {first.pid}" in second.stderr and second.stderr.count("\n") == 1
        _, stderr = first.communicate(timeout=120)
    finally:
        server.stop()
    assert first.returncode == 0, stderr
    assert_complete(out, 4, 3)  # every session once


def test_overwrite_of_a_live_memory_run_deletes_nothing(tmp_path):
    server = fault_server("--latency", "0.3")
    try:
        out = tmp_path / "live.jsonl"
        args = [*batch_args(server, out, users=4, eval_size=3), *MEMORY, "--concurrency", "2"]
        live = start(args)
        wait_for_records(out, 2, live)
        manifest = out.with_name(out.name + ".manifest.json").read_bytes()
        refused = run_cli(*args, "--overwrite", "--max_turns", "4", timeout=60)
        assert refused.returncode == 2 and "being written by another run" in refused.stderr
        assert out.exists() and out.with_name(out.name + ".manifest.json").read_bytes()[:200] == manifest[:200]
        _, stderr = live.communicate(timeout=120)
    finally:
        server.stop()
    assert live.returncode == 0, stderr
    assert_complete(out, 4, 3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_run_cleanly_and_the_manifest_says_which(tmp_path, sig):
    server = fault_server("--latency", "0.2")
    try:
        out = tmp_path / "r.jsonl"
        # one session at a time, so that the signal lands while sessions remain (all 12 at once
        # finish together, and the run could be over before the signal is sent)
        proc = start([*batch_args(server, out, users=4, eval_size=3), "--concurrency", "1"])
        wait_for_records(out, 1, proc)
        os.kill(proc.pid, sig)
        time.sleep(0.05)
        os.kill(proc.pid, sig)  # a second signal while it stops changes nothing
        _, stderr = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr and stderr.count(f"{sig.name}: stopping") == 1
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["ended"] == f"interrupted ({sig.name})" and manifest["finished"]
    records = read_records(out)
    assert len({(r["user_id"], r["session_index"]) for r in records}) == len(records) < 12
    assert not out.with_name(out.name + ".lock").exists()  # the lock is released


def test_credentials_in_an_endpoint_url_and_echoed_headers_never_reach_outputs(tmp_path):
    secret = "sk-url-CRED-4d1f9a"
    server = fault_server("--require-key", "the-real-key")
    try:
        url = server.url.replace("http://", f"http://alice:{secret}@")
        out = tmp_path / "r.jsonl"
        res = run_cli("--api-base", url, "--model", "scripted", "--api-key", "sk-wrong-99e1aa", "--dataset", "demo",
                      "--eval_size", "1", "--users", "1", "--output_file", str(out), "--no-progress", "--skip-preflight",
                      "--max-failure-rate", "1", timeout=120)  # fmt: skip
    finally:
        server.stop()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert secret not in text and "sk-wrong-99e1aa" not in text, path
    assert secret not in res.stdout + res.stderr and "sk-wrong-99e1aa" not in res.stdout + res.stderr
