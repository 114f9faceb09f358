"""runners/rescore.py: the recorded draft answers graded again by another judge over real HTTP (the
scripted server, serving another model name), new files beside the untouched originals, and the
judge-agreement table."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msc_graph.results.provenance import code_version
from tests.helpers import REPO, cli_args, run_cli, start_scripted_server


def rescore(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "runners" / "rescore.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A no-memory run (4 users x 4 sessions) whose records then get draft answers the scripted judge
    grades differently: a number (as the published protocol records them) and a missing answer; and a
    superseded failed attempt before one session's record."""
    folder = tmp_path_factory.mktemp("rescore_in")
    server = start_scripted_server()
    try:
        out = folder / "run.jsonl"
        res = run_cli("--dataset", "demo", "--eval_size", "4", "--users", "4", *cli_args(server.url),
                      "--output_file", str(out), "--no-progress")  # fmt: skip
        assert res.returncode == 0, res.stderr
    finally:
        server.stop()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for r in records:
        if r["session_index"] == 0:  # graded 1 before; the new judge sees no FINAL in "42": 0
            r["draft_answer"] = 42
    failed = {**records[5], "task_success": None, "failure": {"stage": "agent", "reason": "boom", "kind": "content"}}
    lines = [json.dumps(failed)] + [json.dumps(r) for r in records]
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def judge():
    server = start_scripted_server(model="second-judge")
    yield server
    server.stop()


def test_rescore_writes_new_files_and_the_agreement_table(inputs, judge, tmp_path):
    before = digest(inputs), digest(Path(str(inputs) + ".manifest.json"))
    out = tmp_path / "rescored"
    res = rescore(inputs, "--judge-api-base", judge.url, "--judge-model", "hosted_vllm/second-judge", "-o", out)
    assert res.returncode == 0, res.stderr
    assert (digest(inputs), digest(Path(str(inputs) + ".manifest.json"))) == before  # the originals untouched
    new = [json.loads(line) for line in (out / "run.jsonl").read_text().splitlines()]
    assert len(new) == 16  # the superseded failed attempt is not graded again, nor copied
    manifest = json.loads((out / "run.jsonl.manifest.json").read_text())
    old_manifest = json.loads(Path(str(inputs) + ".manifest.json").read_text())
    assert manifest["result_settings"]["judge"]["model"] == "second-judge"
    assert manifest["result_settings"]["judge"]["rescored"] is True
    assert manifest["settings_hash"] != old_manifest["settings_hash"]
    assert {r["settings_hash"] for r in new} == {manifest["settings_hash"]}
    assert manifest["rescored"]["from"] == str(inputs.resolve())
    first = [r for r in new if r["session_index"] == 0]
    assert all(r["task_success"] == 0 and r["rescore"]["before"]["task_success"] == 1 for r in first)
    assert all(r["task_success"] == 1 for r in new if r["session_index"] > 0)
    assert all(r["usage"]["judge"]["calls"] == 1 for r in new)
    (row,) = list(csv.DictReader(open(out / "agreement.csv")))
    assert row["graded by both"] == "16" and row["agreement %"] == "75.0" and row["1->0"] == "4"
    assert row["TS before %"] == "100.0" and row["TS after %"] == "75.0"
    # the first judge said 1 to everything: no agreement beyond chance, in every resample of the 4 users
    assert row["kappa"] == "0.000 [0.000, 0.000]" and row["users"] == "4"
    assert "kappa: Cohen's kappa" in (out / "agreement.md").read_text()
    assert manifest["rescored"]["code"] == code_version()  # the code that re-graded
    differ = list(csv.DictReader(open(out / "disagreements.csv")))
    assert {(d["user"], d["session"], d["draft answer"]) for d in differ} == {(str(u), "1", "42") for u in range(4)}
    assert "Judge agreement" in res.stdout and "| 75.0 |" in res.stdout


def test_rescored_files_are_a_setting_of_their_own_in_the_report(inputs, judge, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "rescored"
    assert rescore(inputs, "--judge-api-base", judge.url, "--judge-model", "second-judge", "-o", out).returncode == 0
    res = subprocess.run([sys.executable, str(REPO / "runners" / "report.py"), str(inputs), str(out / "run.jsonl"),
                          "--out", str(tmp_path / "report"), "--compare", "judge.model", "--baseline", "scripted",
                          "--transcripts", "none"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    (effect,) = list(csv.DictReader(open(tmp_path / "report" / "effects.csv")))
    assert effect["comparison"] == "memory=none, judge.model=second-judge vs memory=none, judge.model=scripted"
    assert effect["pairs"] == "16" and effect["dTS %"] == "-25.0 [-25.0, -25.0] (n = 16 pairs, 4 users)"


def test_refusals_write_nothing(inputs, judge, tmp_path):
    copy = tmp_path / "in" / "run.jsonl"
    copy.parent.mkdir()
    shutil.copy(inputs, copy)
    cases = [
        ([copy, "-o", copy.parent], "is an input of this command"),
        ([copy, "-o", tmp_path / "o1", "--judge-model", "absent"], "does not serve model 'absent'"),
        ([tmp_path / "missing.jsonl", "-o", tmp_path / "o2"], "does not exist"),
    ]
    for args, message in cases:
        model = [] if "--judge-model" in args else ["--judge-model", "second-judge"]
        res = rescore(*args, "--judge-api-base", judge.url, *model)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and message in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert sorted(p.name for p in copy.parent.iterdir()) == ["run.jsonl"]
    down = rescore(copy, "--judge-api-base", "http://127.0.0.1:9/v1", "--judge-model", "x", "-o", tmp_path / "o3")
    assert down.returncode == 2 and "did not answer" in down.stderr and not (tmp_path / "o3").exists()
    # a second rescore into the same folder needs --overwrite
    ok = rescore(copy, "--judge-api-base", judge.url, "--judge-model", "second-judge", "-o", tmp_path / "o4")
    assert ok.returncode == 0, ok.stderr
    again = rescore(copy, "--judge-api-base", judge.url, "--judge-model", "second-judge", "-o", tmp_path / "o4")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    help_text = rescore("--help").stdout
    for flag in ("--judge-api-base", "--judge-model", "--api-key", "--out-dir", "--concurrency", "--overwrite", "--structured"):
        assert flag in help_text, flag
