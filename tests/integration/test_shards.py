"""Sharded runs: every user in exactly one shard; merging finds gaps and duplicates."""

from __future__ import annotations

import subprocess
import sys

from msc_graph.results import read_records
from tests.helpers import REPO, cli_args, run_cli


def test_two_shards_merge_and_gaps_and_duplicates_are_reported(tmp_path, scripted_server):
    outs = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.jsonl"
        res = run_cli("--dataset", "demo", "--eval_size", "2", "--users", "5", "--shard", f"{k}/2",
                      *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress")  # fmt: skip
        assert res.returncode == 0, res.stderr
        outs.append(out)
    assert {r["user_id"] for r in read_records(outs[0])} == {0, 2, 4}
    assert {r["user_id"] for r in read_records(outs[1])} == {1, 3}
    merged = tmp_path / "merged.jsonl"
    cmd = [sys.executable, str(REPO / "runners" / "merge.py"), *map(str, outs), "-o", str(merged), "--strict"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(read_records(merged)) == 10 and "expected 10" in res.stdout
    # drop one session from shard 2 and copy one record into shard 1: both are reported
    lines = outs[1].read_text().splitlines(keepends=True)
    outs[1].write_text("".join(lines[:-1]))
    with open(outs[0], "a") as fh:
        fh.write(lines[0])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "duplicates (1" in res.stdout and "missing (1)" in res.stdout
