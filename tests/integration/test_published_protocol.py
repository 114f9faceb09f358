"""``--protocol published`` against the published code itself, on the same scripted replies
(``tests/published_harness.py``): named scenarios. Per session, Task Success, User Effort and
Length must be equal, and so must the model calls per role. ``test_published_differential.py``
does the same over randomized scripts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from msc_graph.results import read_records
from tests.helpers import REPO, run_cli
from tests.published_harness import (
    JSON_AGENT,
    REFERENCE,
    require_published_code,
    run_ours,
    run_published,
    server_calls,
    start_server,
)

pytestmark = pytest.mark.integration

SCENARIOS = [
    "terminate_at_3", "should_terminate_only", "effort_true", "effort_True", "effort_yes", "effort_1",
    "effort_missing", "draft_number", "judge_str1", "judge_true", "judge_float1", "judge_half", "judge_2",
    "max_turns", "enforce_on_terminate", "regenerate",
]  # fmt: skip
MAX_TURNS = 5


@pytest.mark.parametrize(
    "memory, model",
    [(False, "scripted"), (False, JSON_AGENT), (True, "scripted"), (True, JSON_AGENT)],
    ids=["no-memory-text", "no-memory-json", "memory-text", "memory-json"],
)  # fmt: skip
def test_published_protocol_scores_every_session_as_the_published_code(tmp_path, memory, model):
    require_published_code()
    samples = [{"problem": f"Problem {i}: how many sides has a heptagon? (scenario: {name})", "solution": "7"}
               for i, name in enumerate(SCENARIOS)]  # fmt: skip
    theirs_server, ours_server = start_server(model), start_server(model)
    try:
        theirs = run_published(tmp_path, theirs_server, samples, memory=memory, model=model, max_turns=MAX_TURNS)
        ours = run_ours(tmp_path, ours_server, samples, memory=memory, model=model, max_turns=MAX_TURNS)
        calls = (server_calls(theirs_server)["calls"], server_calls(ours_server)["calls"])
    finally:
        theirs_server.stop()
        ours_server.stop()

    assert len(theirs) == len(ours) == len(SCENARIOS)
    for t in theirs:
        o = ours[t["problem"]]
        assert o["failure"] is None, (t["problem"], o["failure"])
        got = {"task_success": o["task_success"], "user_effort": o["user_effort"], "length": o["length"]}
        want = {k: t[k] for k in got}
        assert got == want, t["problem"]
    assert calls[0] == calls[1]
    regenerated = next(r for r in ours.values() if "scenario: regenerate" in r["problem"])
    assert regenerated["attempts"] == 2
    judged_two = next(r for r in ours.values() if "scenario: judge_2" in r["problem"])
    assert judged_two["task_success"] == 2  # int() of the published judge keeps it
    if memory:
        assert all(isinstance(r["notes_after"], str) for r in ours.values())
        assert any(r["notes_before"] for r in ours.values())


def test_the_published_prompts_come_from_the_published_code_only(tmp_path):
    require_published_code()
    from msc_graph.protocols.published_source import PublishedCodeError, load_published

    texts = load_published(str(REFERENCE))
    assert texts.termination_signal == "TERMINATE" and set(texts.task_descriptions) >= {"math-hard", "logiqa"}
    for path in (REPO / "msc_graph").rglob("*.py"):  # none of that text is in the project
        source = path.read_text()
        for template in texts.templates.values():
            assert template[:120] not in source, path
        assert texts.notes_intro[:60] not in source, path
    res = run_cli("--protocol", "published", "--published-code", str(tmp_path), "--output_file", str(tmp_path / "r.jsonl"))
    assert res.returncode == 2 and "--published-code" in res.stderr and res.stderr.count("\n") == 1
    with pytest.raises(PublishedCodeError, match="--published-code"):
        load_published(str(tmp_path / "nowhere"))


def test_a_published_memory_run_killed_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    require_published_code()
    import os
    import signal
    import time

    samples = [{"problem": f"Problem {i}: how many sides has a heptagon? (scenario: terminate_at_3)", "solution": "7"}
               for i in range(4)]  # fmt: skip
    dataset = tmp_path / "four.json"
    dataset.write_text(json.dumps(samples))
    server = start_server("scripted")
    try:
        def command(out: Path) -> list[str]:
            return [sys.executable, str(REPO / "runners" / "batch.py"), "--protocol", "published", "--published-code",
                    str(REFERENCE), "--experiment_type", "agent_with_memory", "--dataset", str(dataset), "--eval_size", "4",
                    "--users", "3", "--api-base", server.url, "--model", "scripted", "--output_file", str(out),
                    "--no-progress"]  # fmt: skip

        reference = tmp_path / "ref.jsonl"
        assert subprocess.run(command(reference), capture_output=True, timeout=300).returncode == 0
        out = tmp_path / "killed.jsonl"
        proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (out.exists() and len(out.read_bytes().splitlines()) >= 5) and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        resumed = subprocess.run(command(out), capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        server.stop()

    def by_key(path: Path) -> dict:
        return {(r["user_id"], r["session_index"]): (r["transcript"], r["notes_before"], r["notes_after"], r["task_success"])
                for r in read_records(path)}  # fmt: skip

    assert by_key(out) == by_key(reference)
