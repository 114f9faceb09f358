"""``--backend mock`` (the scripted server in process), ``--cache`` (a second identical run sends no
model call) and ``runners/view.py`` (the report served on loopback)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO, run_cli

pytest.importorskip("matplotlib")


def answered(stderr: str) -> int:
    return int(re.search(r"mock backend: (\d+) model calls answered", stderr).group(1))


@pytest.fixture(scope="module")
def mock_runs(tmp_path_factory):
    """The README's first command, with a cache, twice (two output files, one cache folder)."""
    folder = tmp_path_factory.mktemp("mock")
    common = ["--backend", "mock", "--dataset", "demo", "--users", "2", "--eval_size", "3", "--cache", str(folder / "cache")]
    out = {}
    for name in "ab":
        start = time.monotonic()
        out[name] = run_cli(*common, "--output_file", str(folder / f"{name}.jsonl"), cwd=folder)
        out[name + "_s"] = time.monotonic() - start
        assert out[name].returncode == 0, out[name].stderr
    return folder, out


def test_a_mock_run_takes_seconds_says_its_numbers_mean_nothing_and_a_cached_rerun_sends_nothing(mock_runs):
    folder, res = mock_runs
    assert "numbers of this run mean nothing" in res["a"].stderr and res["a_s"] < 60, res["a_s"]
    calls = answered(res["a"].stderr)
    assert calls >= 6 * 3  # each session: several user and agent turns and a judge call
    assert answered(res["b"].stderr) == 0  # counted at the scripted server
    manifests = [json.loads((folder / f"{n}.jsonl.manifest.json").read_text()) for n in "ab"]
    assert manifests[0]["cache"]["misses"] == calls and manifests[0]["cache"]["hits"] == 0
    assert (manifests[1]["cache"]["hits"], manifests[1]["cache"]["misses"]) == (calls, 0)
    records = [[json.loads(line) for line in (folder / f"{n}.jsonl").read_text().splitlines()] for n in "ab"]
    assert [r["transcript"] for r in records[0]] == [r["transcript"] for r in records[1]]  # the re-run replays


def view(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "runners" / "view.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_view_serves_the_report_on_loopback_until_stopped(mock_runs, tmp_path):
    from msc_graph.cli.view import main as view_main

    folder, _ = mock_runs
    proc = view(str(folder / "a.jsonl"), "--no-browser")
    try:
        line = proc.stdout.readline()
        url = re.search(r"report: (http://127\.0\.0\.1:\d+/report\.html)", line)
        assert url, line + proc.stderr.read()
        served = Path(re.search(r"files in (\S+);", line).group(1))
        page = httpx.get(url.group(1), timeout=10)
        assert page.status_code == 200 and 'id="msc-index"' in page.text and "compare-with" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    assert not served.exists()  # the temporary report folder went with the server
    assert view_main([str(tmp_path / "missing.jsonl"), "--no-browser", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
