"""``--protocol published`` against the published code itself, on the same scripted replies.

Two loopback servers answer the published prompts the same way (``published_server``: the reply
is a function of the request). The published code's own loop and evaluator run against one (in a
child process, with stand-ins for the coding-task modules it imports but the QA datasets never
use), ``runners/batch.py --protocol published`` against the other. Per session, Task Success, User
Effort and Length must be equal, and so must the model calls per role.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from msc_graph.data import load_dataset_problems, load_profiles
from msc_graph.results import read_records
from msc_graph.testing.published_server import published_standins
from tests.helpers import PROFILES_FILE, REPO, SHARED, Server, run_cli, start_scripted_server

pytestmark = pytest.mark.integration

REFERENCE = Path(SHARED).parent.parent / "reference" / "multisessioncollab"
SCENARIOS = [
    "terminate_at_3", "should_terminate_only", "effort_true", "effort_True", "effort_yes", "effort_1",
    "effort_missing", "draft_number", "judge_str1", "judge_true", "judge_float1", "judge_half", "judge_2",
    "max_turns", "enforce_on_terminate", "regenerate",
]  # fmt: skip
MAX_TURNS = 5

# The published code's loop and evaluator, as its run.py drives them, on the given samples; the
# User Effort count is run.py's (entries whose enforce_preferences == True or == "True").
DRIVER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["HF_HUB_OFFLINE"] = "1"
    args = json.loads(sys.argv[1])
    sys.path[:0] = [args["standins"], args["reference"]]
    import litellm
    litellm.disable_hf_tokenizer_download = True
    litellm.suppress_debug_info = True
    from collaborativeagents.conversation_generator import ConversationGenerator
    from collaborativeagents.conversation_evaluator import ConversationEvaluator
    model = "hosted_vllm/" + args["model"]
    gen = ConversationGenerator(
        user_task_description=args["task"], user_persona=args["persona"],
        user_preferences="\\n".join(f"{i+1}. {p}" for i, p in enumerate(args["preferences"])),
        max_turns=args["max_turns"], with_proper_scaffolding=args["memory"],
        user_model_name=model, user_api_base=args["url"], user_api_key="EMPTY",
        collaborator_model_name=model, collaborator_api_base=args["url"], collaborator_api_key="EMPTY")
    if args["memory"]:
        sessions = gen.generate_conversations_with_reflective_agent(args["samples"])
    else:
        sessions = [gen.generate_conversation(s) for s in args["samples"]]
    judge = ConversationEvaluator(dataset_name="logiqa", model_name=model, api_base=args["url"], api_key="EMPTY")
    out = []
    for s in sessions:
        judge.evaluate_conversation_acc(s)
        effort = sum(1 for m in s["full_conversation_log"]
                     if "enforce_preferences" in m and (m["enforce_preferences"] == True or m["enforce_preferences"] == "True"))
        out.append({"problem": s["sample"]["problem"], "task_success": s["evaluation"]["accuracy"]["accuracy"],
                    "user_effort": effort, "length": len(s["conversation"])})
    print("RESULT " + json.dumps(out))
    """
)


def _require_published_code() -> None:
    if not (REFERENCE / "collaborativeagents" / "prompts.py").is_file():
        pytest.skip(f"the published code is not at {REFERENCE}")
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("the published code needs litellm (pip install -e '.[dev]')")


def _server(model: str) -> Server:
    return start_scripted_server("--published-code", str(REFERENCE), model=model, module="published_server")


def _calls(server: Server) -> dict[str, int]:
    return httpx.get(server.url.removesuffix("/v1") + "/calls", timeout=5).json()["calls"]


@pytest.mark.parametrize(
    "memory, model",
    [(False, "scripted"), (False, "meta-llama/Llama-3.3-70B-Instruct"), (True, "scripted"),
     (True, "meta-llama/Llama-3.3-70B-Instruct")],
    ids=["no-memory-text", "no-memory-json", "memory-text", "memory-json"],
)  # fmt: skip
def test_published_protocol_scores_every_session_as_the_published_code(tmp_path, memory, model):
    _require_published_code()
    samples = [{"problem": f"Problem {i}: how many sides has a heptagon? (scenario: {name})", "solution": "7"}
               for i, name in enumerate(SCENARIOS)]  # fmt: skip
    dataset = tmp_path / "scenarios.json"
    dataset.write_text(json.dumps(samples))
    profile = load_profiles(PROFILES_FILE)[0] if PROFILES_FILE.is_file() else None
    if profile is None:
        pytest.skip("the published profiles are not in ../shared/data")
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps([profile.model_dump(exclude={"preference_keys"})]))

    theirs_server, ours_server = _server(model), _server(model)
    try:
        driver = {"standins": str(published_standins(tmp_path / "standins")), "reference": str(REFERENCE), "url": theirs_server.url,
                  "model": model, "samples": samples, "memory": memory, "max_turns": MAX_TURNS,
                  "task": load_dataset_problems(str(dataset), len(samples)).task_description,
                  "persona": profile.persona, "preferences": profile.preferences}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(driver)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        theirs = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])

        out = tmp_path / "ours.jsonl"
        experiment = "agent_with_memory" if memory else "agent_without_memory"
        res = run_cli("--protocol", "published", "--published-code", str(REFERENCE), "--experiment_type", experiment,
                      "--dataset", str(dataset), "--eval_size", str(len(samples)), "--profiles", str(profiles),
                      "--max_turns", str(MAX_TURNS), "--api-base", ours_server.url, "--model", f"hosted_vllm/{model}",
                      "--output_file", str(out), "--no-progress", timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        ours = {r["problem"]: r for r in read_records(out)}
        calls = (_calls(theirs_server), _calls(ours_server))
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
    _require_published_code()
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
    _require_published_code()
    import os
    import signal
    import time

    samples = [{"problem": f"Problem {i}: how many sides has a heptagon? (scenario: terminate_at_3)", "solution": "7"}
               for i in range(4)]  # fmt: skip
    dataset = tmp_path / "four.json"
    dataset.write_text(json.dumps(samples))
    server = _server("scripted")
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
