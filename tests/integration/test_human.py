"""A person in the user's seat: runners/chat.py and ``batch.py --user human``, driven through stdin.

The agent, judge and reflection are the scripted OpenAI-compatible server over real HTTP; the
memory is a real embedded Chroma store in a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from msc_graph.graphs.context import SessionContext
from msc_graph.graphs.human import SessionAborted, run_with_person
from tests.helpers import REPO, cli_args

pytestmark = pytest.mark.integration


def _chat(url: str, home, lines: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "runners" / "chat.py"), "--api-base", url, "--model", "scripted",
         "--home", str(home), *extra],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip


def _records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_chat_learns_across_runs_and_saves_records(scripted_server, tmp_path):
    home = tmp_path / "chat"
    first = _chat(scripted_server.url, home,
                  ["Hi, can you help me with this?", "/remind Please use bullet points in every reply.", "/end 42"],
                  "--sessions", "1")  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "Problem (the agent has not seen it)" in first.stdout
    assert "agent> How can I help you?" in first.stdout
    assert "your answer: 42" in first.stdout
    (rec,) = _records(home / "sessions.jsonl")
    assert rec["session_index"] == 0 and rec["failure"] is None
    assert rec["draft_answer"] == "42" and rec["task_success"] in (0, 1)
    assert rec["user_effort"] == 1  # the /remind message
    assert [t["human"] for t in rec["turns"] if t["role"] == "user"] == [True, True, True]
    assert rec["transcript"][1]["content"] == "Hi, can you help me with this?"
    assert rec["notes_before"] == [] and "bullet points" in rec["notes_after"][0]["preference"]
    for key in ("user_id", "problem", "solution", "transcript", "turns", "verdict", "usage", "timing", "retrieved"):
        assert key in rec  # the batch record format

    # A later run starts from the notes kept in --home: /notes shows them, the session sees them.
    second = _chat(scripted_server.url, home, ["/notes", "What should I do first?", "/end"], "--sessions", "1")
    assert second.returncode == 0, second.stderr
    during_session = second.stdout.split("your answer")[0]  # before the end-of-session report
    assert "- The user wants answers as bullet points." in during_session  # printed by /notes
    recs = _records(home / "sessions.jsonl")
    assert [r["session_index"] for r in recs] == [0, 1]
    assert recs[1]["notes_before"] == rec["notes_after"]
    assert recs[1]["retrieved"] and recs[1]["retrieved"][0]["notes"]
    agent_reply = recs[1]["transcript"][2]["content"]
    assert agent_reply.lstrip().startswith("- ")  # the agent used its note without being reminded
    assert recs[1]["user_effort"] == 0


def test_chat_quit_saves_nothing_and_bad_endpoint_is_one_line(scripted_server, tmp_path):
    home = tmp_path / "chat"
    quit_run = _chat(scripted_server.url, home, ["hello", "/quit"], "--sessions", "1")
    assert quit_run.returncode == 0, quit_run.stderr
    assert "not saved" in quit_run.stdout
    assert not (home / "sessions.jsonl").exists() or _records(home / "sessions.jsonl") == []

    down = _chat("http://127.0.0.1:9/v1", tmp_path / "other", ["/end"])
    assert down.returncode == 2
    assert down.stderr.startswith("error: http://127.0.0.1:9/v1 did not answer") and "Traceback" not in down.stderr


def test_batch_with_a_person_playing_each_profile(scripted_server, tmp_path):
    out = tmp_path / "human.jsonl"
    lines = ["Hello, I have a question.", "/end 12", "Another one for you.", "/remind Use bullet points please.", "/end"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "runners" / "batch.py"), *cli_args(scripted_server.url), "--user", "human",
         "--dataset", "demo", "--users", "1", "--eval_size", "2", "--output_file", str(out)],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Your preferences" in proc.stdout and "session 2" in proc.stdout
    recs = sorted(_records(out), key=lambda r: r["session_index"])
    assert [r["session_index"] for r in recs] == [0, 1]
    assert recs[0]["draft_answer"] == "12" and [r["user_effort"] for r in recs] == [0, 1]
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["result_settings"]["user_kind"] == "human"
    assert manifest["config"]["concurrency"] == 1


async def test_run_with_person_needs_a_human_context_and_stops_when_the_person_leaves(scripted_server):
    ctx = SessionContext(**{f"{r}_base_url": scripted_server.url for r in ("user", "agent", "judge")},
                         **{f"{r}_model": "scripted" for r in ("user", "agent", "judge")})  # fmt: skip
    inputs = {"user_id": 0, "session_index": 0, "problem": "1+1?", "solution": "2", "preferences": ["x"]}
    with pytest.raises(ValueError, match="user_kind='human'"):
        await run_with_person(inputs, ctx, None)  # type: ignore[arg-type]

    asked: list[dict] = []

    async def leaves_after_one(question: dict):
        asked.append(question)
        if len(asked) > 1:
            raise SessionAborted("gone")
        return "What is one plus one?"

    human = SessionContext(**{**ctx.__dict__, "user_kind": "human"})
    with pytest.raises(SessionAborted):
        await run_with_person(inputs, human, leaves_after_one)
    assert asked[0]["agent_message"] == "How can I help you?" and asked[1]["agent_message"] != asked[0]["agent_message"]
