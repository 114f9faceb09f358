"""Preference memory on real Chroma (embedded and a `chroma run` server) with the real offline embedding."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msc_graph.local_backend import free_port
from msc_graph.memory.lock import MemoryError_
from msc_graph.memory.store import PreferenceMemory, collection_name, make_client, rank_notes
from msc_graph.results import read_records
from tests.helpers import REPO, cli_args, run_cli, wait_until_ok

BULLETS = {"preference": "Use bullet points in every answer.", "evidence": "s1", "how_to_satisfy": "Write a list."}
POLITE = {"preference": "Be polite and friendly.", "evidence": "s2", "how_to_satisfy": "Greet the user warmly."}


@pytest.fixture
def memory(tmp_path):
    return PreferenceMemory(make_client(path=tmp_path / "mem"), namespace="t")


def search(memory: PreferenceMemory, user_id: int, query: str, k: int = 5, threshold: float = 0.0):
    """Rank the user's notes for a query as the retrieval design does."""
    notes, vectors = memory.notes_with_vectors(user_id)
    if not notes:
        return []
    return rank_notes(notes, vectors, memory.embedding.embed_query([query])[0], k, threshold)


def test_collection_names_are_sanitised():
    assert collection_name("run/1 x", 7) == "msc-run-1-x-user-7"
    assert len(collection_name("n" * 600, 1)) <= 512


def test_replace_list_and_rank(memory):
    assert memory.list(1) == []
    memory.replace(1, [BULLETS, POLITE], session_index=0)
    assert memory.list(1) == [BULLETS, POLITE]
    memory.replace(1, [*memory.list(1), {"preference": "Give a confidence estimate.", "evidence": "", "how_to_satisfy": ""}], 1)
    assert len(memory.list(1)) == 3
    memory.replace(1, [POLITE], session_index=2)
    assert memory.list(1) == [POLITE]
    memory.replace(1, [], session_index=3)
    assert memory.list(1) == [] and search(memory, 1, "anything") == []


def test_the_store_holds_only_the_current_notes_and_readers_ignore_older_leftovers(tmp_path):
    client = make_client(path=tmp_path / "mem")
    third = {"preference": "Give a confidence estimate.", "evidence": "s3", "how_to_satisfy": "Say how sure."}
    writer = PreferenceMemory(client, namespace="t")
    writer.replace(1, [BULLETS, POLITE, third], session_index=0)
    writer.replace(1, [POLITE], session_index=1)
    coll = client.get_collection(collection_name("t", 1))
    assert coll.count() == 1  # the longer version's leftovers were removed
    assert PreferenceMemory(client, namespace="t").list(1) == [POLITE]  # a fresh reader, from Chroma

    # a crash between the write and the clean-up leaves documents of an older version behind
    stale = {"user": "1", "session": 0, "version": 0, "kind": "preference", "position": 4, **BULLETS}
    coll.upsert(ids=["u1-n4"], documents=["stale"], embeddings=writer._passage_vectors(["stale"]), metadatas=[stale])
    assert PreferenceMemory(client, namespace="t").list(1) == [POLITE]
    writer.replace(1, [], session_index=2)
    assert PreferenceMemory(client, namespace="t").list(1) == [] and coll.count() == 1  # the empty marker


def test_retrieval_ranks_bullets_above_politeness_for_a_list_request(memory):
    memory.replace(3, [POLITE, BULLETS])
    hits = search(memory, 3, "please use a list", k=2)
    assert [h.note["preference"] for h in hits] == [BULLETS["preference"], POLITE["preference"]]
    assert hits[0].score > hits[1].score
    assert search(memory, 3, "please use a list", k=2, threshold=0.99) == []


async def test_fifty_users_writing_and_reading_concurrently_never_see_each_other(memory):
    async def user(uid: int) -> None:
        mine = [{"preference": f"user {uid} wants style {j}", "evidence": f"u{uid}", "how_to_satisfy": f"do {uid}"} for j in range(3)]
        for round_ in range(3):
            await asyncio.to_thread(memory.replace, uid, mine[: round_ + 1], round_)
            listed = await asyncio.to_thread(memory.list, uid)
            found = await asyncio.to_thread(search, memory, uid, "style", 5)
            assert listed == mine[: round_ + 1]
            assert all(h.note["evidence"] == f"u{uid}" for h in found)

    await asyncio.gather(*(user(u) for u in range(50)))
    for uid in range(50):
        assert {n["evidence"] for n in memory.list(uid)} == {f"u{uid}"}


def test_notes_persist_across_processes_and_a_second_process_is_refused(tmp_path):
    path = tmp_path / "mem"
    script = (
        "import sys, json; from msc_graph.memory.store import PreferenceMemory, make_client;"
        "m = PreferenceMemory(make_client(path=sys.argv[1]), namespace='p');"
        "m.replace(9, [json.loads(sys.argv[2])], 0) if len(sys.argv) > 2 else print(json.dumps(m.list(9)))"
    )
    subprocess.run([sys.executable, "-c", script, str(path), json.dumps(BULLETS)], check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", script, str(path)], check=True, capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [BULLETS]
    # while this process holds the folder, another process must be refused with a clear message
    make_client(path=path)
    res = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "in use by another process" in res.stderr


def test_a_missing_chroma_server_is_a_clear_error():
    with pytest.raises(MemoryError_, match="cannot reach the Chroma server"):
        make_client(url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def chroma_server(tmp_path):
    beside = Path(sys.executable).with_name("chroma")  # the venv's, even when it is not activated
    exe = str(beside) if beside.exists() else shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ok(f"{url}/api/v2/heartbeat")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.integration
def test_chroma_server_shared_by_two_processes(chroma_server):
    script = (
        "import sys, json; from msc_graph.memory.store import PreferenceMemory, make_client;"
        "m = PreferenceMemory(make_client(url=sys.argv[1]), namespace='shared');"
        "uid = int(sys.argv[2]); m.replace(uid, [json.loads(sys.argv[3])], 0);"
        "print(json.dumps([m.list(0), m.list(1)]))"
    )
    a = subprocess.Popen([sys.executable, "-c", script, chroma_server, "0", json.dumps(BULLETS)], stdout=subprocess.PIPE, text=True)
    b = subprocess.Popen([sys.executable, "-c", script, chroma_server, "1", json.dumps(POLITE)], stdout=subprocess.PIPE, text=True)
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    mem = PreferenceMemory(make_client(url=chroma_server), namespace="shared")
    assert mem.list(0) == [BULLETS] and mem.list(1) == [POLITE]
    assert search(mem, 0, "please use a list", k=3)[0].note == BULLETS


@pytest.mark.integration
@pytest.mark.parametrize("placement", ["store process", "in process"])
def test_memory_run_of_three_users_learns_and_retrieves(tmp_path, scripted_server, placement):
    out = tmp_path / "mem.jsonl"
    res = run_cli(
        "--experiment_type", "agent_with_memory", "--dataset", "demo", "--eval_size", "3", "--users", "3",
        *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress",
        *(["--memory-in-process"] if placement == "in process" else []),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "mem.jsonl.memory" / "store-process.log").exists() == (placement == "store process")
    records = sorted(read_records(out), key=lambda r: (r["user_id"], r["session_index"]))
    assert len(records) == 9
    for r in records:
        if r["session_index"] == 0:
            assert r["notes_before"] == [] and r["user_effort"] == 1
            assert len(r["notes_after"]) > len(r["notes_before"])  # the user enforced: notes grew
        else:
            assert r["notes_before"], "later sessions start from the notes learned earlier"
            retrieved = [n for turn in r["retrieved"] for n in turn["notes"]]
            assert retrieved and "bullet" in retrieved[0]["preference"].lower()
            assert r["user_effort"] == 0  # the agent followed the retrieved note: nothing to enforce
    # the store holds exactly what the records say
    mem_dir = tmp_path / "mem.jsonl.memory"
    check = (
        "import sys, json; from msc_graph.memory.store import PreferenceMemory, make_client;"
        "m = PreferenceMemory(make_client(path=sys.argv[1]), namespace=sys.argv[2]);"
        "print(json.dumps([m.list(u) for u in range(3)]))"
    )
    ns = records[0]["settings_hash"]
    got = subprocess.run([sys.executable, "-c", check, str(mem_dir), ns], capture_output=True, text=True, check=True)
    stored = json.loads(got.stdout.strip().splitlines()[-1])
    assert stored == [records[3 * u + 2]["notes_after"] for u in range(3)]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["notes", "select", "oracle"])
def test_every_memory_mode_runs(tmp_path, scripted_server, mode):
    out = tmp_path / f"{mode}.jsonl"
    res = run_cli(
        "--experiment_type", "agent_with_memory", "--memory", mode, "--dataset", "demo", "--eval_size", "2",
        "--users", "2", *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    records = read_records(out)
    assert len(records) == 4 and all(r["failure"] is None and r["memory"] == mode for r in records)
    second = [r for r in records if r["session_index"] == 1]
    if mode in ("notes", "select"):
        assert all(r["notes_before"] for r in second)
    if mode == "select":
        assert all(r["usage"].get("agent_select", {}).get("calls", 0) >= 1 for r in second)
        assert all(r["retrieved"][0]["notes"] for r in second)


@pytest.mark.integration
def test_two_runner_processes_share_one_chroma_server(tmp_path, scripted_server, chroma_server):
    procs, outs = [], []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.jsonl"
        outs.append(out)
        cmd = [sys.executable, str(REPO / "runners" / "batch.py"), "--experiment_type", "agent_with_memory",
               "--dataset", "demo", "--eval_size", "2", "--users", "4", "--shard", f"{k}/2",
               "--chroma-url", chroma_server, *cli_args(scripted_server.url), "--output_file", str(out), "--no-progress"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    records = [r for out in outs for r in read_records(out)]
    assert sorted((r["user_id"], r["session_index"]) for r in records) == [(u, s) for u in range(4) for s in range(2)]
    ns = records[0]["settings_hash"]
    assert {r["settings_hash"] for r in records} == {ns}
    mem = PreferenceMemory(make_client(url=chroma_server), namespace=ns)
    for r in records:
        if r["session_index"] == 1:
            assert mem.list(r["user_id"]) == r["notes_after"] and r["notes_before"]
    assert not (tmp_path / "shard1.jsonl.memory").exists()  # nothing embedded was opened


def test_embedded_chroma_keeps_a_bounded_number_of_indexes_in_memory(tmp_path):
    """Chroma would size its HNSW cache from the open-file limit (thousands of ~2.6 MB indexes)."""
    import resource

    from msc_graph.memory.store import HNSW_CACHE_INDEXES, make_client

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    client = make_client(tmp_path / "chroma")
    assert client._server.hnsw_cache_size == HNSW_CACHE_INDEXES == 128
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before  # the process limit is untouched
    # indexes evicted from that cache are read back from disk: every user's notes stay readable
    for user in range(HNSW_CACHE_INDEXES + 20):
        coll = client.get_or_create_collection(f"user-{user}", embedding_function=None)
        coll.add(ids=[f"n{user}"], embeddings=[[float(user % 7 + 1), 1.0, 0.5]], documents=[f"note {user}"])
    first = client.get_collection("user-0", embedding_function=None)
    assert first.query(query_embeddings=[[1.0, 1.0, 0.5]], n_results=1)["documents"] == [["note 0"]]
