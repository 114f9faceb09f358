"""runners/export_reflections.py on a real memory run against the scripted server."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO, cli_args, run_cli


def test_export_reflections_from_a_memory_run(tmp_path, scripted_server):
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps([
        {"i": 0, "persona": "a tester", "preferences": ["You want answers formatted as bullet points.", "Be brief."],
         "categories": ["habitual_strategies", "directness"]},
    ]))  # fmt: skip
    out = tmp_path / "mem.jsonl"
    res = run_cli("--experiment_type", "agent_with_memory", "--dataset", "demo", "--eval_size", "3",
                  "--profiles", str(profiles), *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress")  # fmt: skip
    assert res.returncode == 0, res.stderr
    export = tmp_path / "reflections.jsonl"
    done = subprocess.run([sys.executable, str(REPO / "runners" / "export_reflections.py"), str(out), "-o", str(export)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["session_index"] for r in rows] == [0, 1, 2]
    first = rows[0]
    assert first["notes_before"] == [] and first["notes_after"]
    assert first["rewards"]["enforced_preferences"] == [0]
    assert {r["split"] for r in rows} == {"test"}  # from the manifest: training refuses these rows
    assert first["rewards"]["coverage"][0]["covered"] is True  # the bullet note covers the bullet preference
    assert first["rewards"]["next_session_user_effort"] == rows[1]["rewards"]["user_effort"]
    assert rows[-1]["rewards"]["next_session_user_effort"] is None


def test_export_refuses_results_without_memory(tmp_path, scripted_server):
    out = tmp_path / "plain.jsonl"
    assert run_cli("--dataset", "demo", "--eval_size", "1", "--users", "1", *cli_args(scripted_server.url),
                   "--output_file", str(out), "--no-progress").returncode == 0  # fmt: skip
    res = subprocess.run([sys.executable, str(REPO / "runners" / "export_reflections.py"), str(out), "-o", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "memory run" in res.stderr
