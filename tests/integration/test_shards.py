"""Sharded runs: every user in exactly one shard; merging finds gaps and duplicates."""

from __future__ import annotations

import json
import subprocess
import sys

from msc_graph.cli.merge import main as merge_main
from msc_graph.results import read_records
from msc_graph.results.files import manifest_path
from msc_graph.results.settings import load_results
from tests.helpers import REPO, cli_args, run_cli


def test_two_shards_merge_and_gaps_and_duplicates_are_reported(tmp_path, scripted_server, capsys):
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
    # the merged file has a manifest of its own: a report reads its settings as any run's
    shard_manifest, manifest = (json.loads(manifest_path(p).read_text()) for p in (outs[0], merged))
    assert manifest["settings_hash"] == shard_manifest["settings_hash"]
    assert manifest["result_settings"] == shard_manifest["result_settings"]
    assert manifest["profiles"]["users"] == [0, 1, 2, 3, 4] and manifest["config"]["shard"] is None
    assert [s.from_manifest for s in load_results([merged]).settings.values()] == [True]
    # a shard missing, given twice, or not the number expected: one error line, exit 2, nothing written
    for argv, says in (([outs[0]], "shard 2/2 is missing"), ([outs[0], outs[0]], "shard 1/2 is given twice"),
                       ([*outs, "--expect", "3"], "--expect 3: 2 result files")):  # fmt: skip
        target = tmp_path / "refused.jsonl"
        assert merge_main([*map(str, argv), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and says in err and err.count("\n") == 1, err
        assert not target.exists() and not manifest_path(target).exists()
    # drop one session from shard 2 and copy one record into shard 1: both are reported
    lines = outs[1].read_text().splitlines(keepends=True)
    outs[1].write_text("".join(lines[:-1]))
    with open(outs[0], "a") as fh:
        fh.write(lines[0])
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "duplicates (1" in res.stdout and "missing (1)" in res.stdout
