"""The LangGraph Studio contract: ``langgraph dev`` serves our three graphs, and the SDK runs them.

Starts the real ``langgraph dev`` (in-memory runtime, offline) from ``langgraph.json`` on loopback,
points every role at the scripted OpenAI-compatible server through the run context, and checks the
final state, the thread history, the schemas each assistant serves, and a person's turn through
``interrupt()`` resumed with the SDK.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, Server, start_scripted_server, wait_until_ok

pytestmark = pytest.mark.integration

langgraph_sdk = pytest.importorskip("langgraph_sdk", reason="install the [studio] extra")

PROBLEM = {"problem": "What is 6 times 7?", "solution": "42"}
PROFILE = {"user_id": 4, "persona": "a careful reader", "preferences": ["Please answer with bullet points."]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_server() -> Iterator[Server]:
    server = start_scripted_server("--terminate-after", "3")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[str]:
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.skip("langgraph CLI not installed (pip install -e '.[studio]')")
    port = _free_port()
    log = tmp_path_factory.mktemp("studio") / "langgraph-dev.log"
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(cli), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(f"{url}/ok", attempts=600, pause=0.2)
    except RuntimeError:
        proc.kill()
        pytest.fail(f"langgraph dev did not start:\n{log.read_text()[-3000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(REPO / ".langgraph_api", ignore_errors=True)


def _context(server: Server, tmp_path: Path, **extra) -> dict:
    ctx = {}
    for role in ("user", "agent", "judge"):
        ctx[f"{role}_api_base"] = server.url
        ctx[f"{role}_model"] = server.model
    ctx.update(memory_dir=str(tmp_path / "memory"), max_turns=5, **extra)
    return ctx


async def _assistants(client) -> dict[str, str]:
    return {a["graph_id"]: a["assistant_id"] for a in await client.assistants.search()}


async def test_each_assistant_serves_its_schemas(studio):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    assert set(ids) >= {"session", "session_with_memory", "user_run"}
    for graph_id, assistant_id in ids.items():
        schemas = await client.assistants.get_schemas(assistant_id)
        context_fields = schemas["context_schema"]["properties"]
        assert {"agent_api_base", "agent_model", "memory", "max_turns", "user_kind"} <= set(context_fields)
        assert all(field.get("description") for field in context_fields.values()), graph_id  # the form explains itself
        assert context_fields["user_kind"]["enum"] == ["simulated", "human"]  # closed choices
        assert context_fields["protocol"]["enum"] == ["ours", "published"]
        assert {"retrieval", "published"} <= set(context_fields["memory"]["examples"])
        assert "api_key" not in json.dumps(context_fields)  # keys come from the environment only
        assert schemas["input_schema"]["properties"], graph_id
    memory_default = (await client.assistants.get_schemas(ids["session_with_memory"]))["context_schema"]
    assert memory_default["properties"]["memory"]["default"] == "retrieval"
    plain = (await client.assistants.get_schemas(ids["session"]))["context_schema"]
    assert plain["properties"]["memory"]["default"] == "none"
    graph = await client.assistants.get_graph(ids["session_with_memory"])
    assert {"simulate_user", "respond", "judge", "recall", "learn"} <= {n["id"] for n in graph["nodes"]}


async def test_session_graph_runs_through_the_server(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    thread = await client.threads.create()
    inputs = {"session_index": 0, **PROBLEM, **PROFILE}
    state = await client.runs.wait(thread["thread_id"], ids["session"], input=inputs, context=_context(model_server, tmp_path))
    assert state.get("failure") is None, state.get("failure")
    assert state["messages"][0] == {"role": "assistant", "content": "How can I help you?", "type": "ai"}
    assert [m["type"] for m in state["messages"]] == ["ai", "human"] * 3  # what Studio's chat view reads
    assert state["user_turns"] == 3 and state["terminated"] is True
    assert state["task_success"] in (0, 1) and state["verdict"]
    history = await client.threads.get_history(thread["thread_id"], limit=50)
    visited = [h["next"][0] for h in history if h["next"]]
    assert visited.count("simulate_user") == 3 and visited.count("respond") == 2 and "judge" in visited
    assert "recall" not in visited


async def test_memory_graph_retrieves_and_reflects(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    ctx = _context(model_server, tmp_path)  # memory comes from the graph's default: retrieval
    inputs = {"session_index": 0, **PROBLEM, **PROFILE}
    first = await client.runs.wait(None, ids["session_with_memory"], input=inputs, context=ctx)
    assert first.get("failure") is None, first.get("failure")
    assert first["notes_before"] == [] and first["notes_after"], "reflection wrote no notes"
    assert [r["user_turn"] for r in first["retrieved"]] == [1, 2]
    thread = await client.threads.create()
    second = await client.runs.wait(thread["thread_id"], ids["session_with_memory"], input={**inputs, "session_index": 1}, context=ctx)
    assert second["notes_before"] == first["notes_after"]  # read back from the Chroma store
    assert any(r["notes"] for r in second["retrieved"])


async def test_user_run_graph_carries_notes_between_sessions(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    problems = [PROBLEM, {"problem": "What is 2 + 3?", "solution": "5"}, {"problem": "What is 9 - 4?", "solution": "5"}]
    inputs = {**PROFILE, "problems": problems, "task_description": "Solve the arithmetic problem."}
    thread = await client.threads.create()
    state = await client.runs.wait(thread["thread_id"], ids["user_run"], input=inputs, context=_context(model_server, tmp_path))
    sessions = state["sessions"]
    assert [s["session_index"] for s in sessions] == [0, 1, 2]
    assert all(s["failure"] is None for s in sessions)
    for earlier, later in zip(sessions, sessions[1:], strict=False):
        assert later["notes_before"] == earlier["notes_after"]
    assert sessions[-1]["notes_after"]


async def test_a_person_plays_the_user_through_interrupt(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    ctx = _context(model_server, tmp_path, user_kind="human")
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, ids["session"], input={"session_index": 0, **PROBLEM, **PROFILE}, context=ctx)
    pending = await client.threads.get_state(tid)
    assert pending["next"] == ["simulate_user"]
    ask = pending["tasks"][0]["interrupts"][0]["value"]
    assert ask["agent_message"] == "How can I help you?" and ask["problem"] == PROBLEM["problem"]

    await client.runs.wait(tid, ids["session"], command={"resume": "Can you help me multiply 6 by 7?"}, context=ctx)
    pending = await client.threads.get_state(tid)
    assert pending["next"] == ["simulate_user"]
    agent_reply = pending["tasks"][0]["interrupts"][0]["value"]["agent_message"]
    assert agent_reply and agent_reply != "How can I help you?"

    final = await client.runs.wait(
        tid, ids["session"], command={"resume": {"response": "Thanks, that's all.", "draft_answer": "42", "end": True}}, context=ctx
    )
    assert final["terminated"] is True and final["draft_answer"] == "42"
    assert [m["role"] for m in final["messages"]] == ["assistant", "user", "assistant", "user"]
    assert final["turns"][0]["human"] is True and final["task_success"] in (0, 1)
    assert (await client.threads.get_state(tid))["next"] == []


def test_langgraph_json_points_at_factories_of_compiled_graphs_without_checkpointers():
    spec = json.loads((REPO / "langgraph.json").read_text())
    from msc_graph.graphs import studio
    from msc_graph.graphs.context import ContextError

    assert set(spec["graphs"]) == {"session", "session_with_memory", "user_run"}
    for name, target in spec["graphs"].items():
        assert target.endswith(f"studio.py:serve_{name}")
        graph = getattr(studio, name)
        assert graph.checkpointer is None and graph.store is None
        factory = getattr(studio, f"serve_{name}")
        assert factory(type("Runtime", (), {"context": {"max_turns": 3}})()) is graph
        with pytest.raises(ContextError, match="unknown context key 'agent_modle'"):
            factory(type("Runtime", (), {"context": {"agent_modle": "x"}})())


async def test_an_input_can_name_the_problem_and_the_user(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    named = {"session_index": 0, "dataset": "demo", "problem_index": 2, "profile_id": 7}
    state = await client.runs.wait(None, ids["session"], input=named, context=_context(model_server, tmp_path))
    assert state.get("failure") is None, state.get("failure")
    from msc_graph.data import builtin_profiles, load_dataset_problems

    assert state["problem"] == load_dataset_problems("demo", 3).problems[2]["problem"]
    assert state["preferences"] == builtin_profiles(8)[7].preferences and state["user_id"] == 7


async def test_a_missing_input_or_an_unknown_context_key_says_what_to_give(studio, model_server, tmp_path):
    client = langgraph_sdk.get_client(url=studio)
    ids = await _assistants(client)
    with pytest.raises(Exception, match=r"InputError: no problem in the input: a session needs a problem: give 'problem'"):
        await client.runs.wait(None, ids["session"], input={"session_index": 0}, context=_context(model_server, tmp_path))
    with pytest.raises(Exception, match=r"agent_modle"):
        await client.runs.wait(None, ids["session"], input={**PROBLEM, **PROFILE},
                               context={**_context(model_server, tmp_path), "agent_modle": "x"})  # fmt: skip
    with pytest.raises(Exception, match=r"profile_id 999 is not in"):
        await client.runs.wait(None, ids["session"], input={**PROBLEM, "profile_id": 999, "profiles": str(_profiles(tmp_path))},
                               context=_context(model_server, tmp_path))  # fmt: skip


def _profiles(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps([{"i": 0, "persona": "p", "preferences": ["Use lists."]}]))
    return path
