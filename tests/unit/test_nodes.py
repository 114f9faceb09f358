"""Unit tests of single nodes and the session graph with scripted fake chat models (no network)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage

import msc_graph.llm as llm
from msc_graph.graphs.context import SessionContext
from msc_graph.graphs.session import graph
from msc_graph.graphs.views import agent_view, trim_to_budget
from msc_graph.llm import parse_json_reply, strip_reasoning
from msc_graph.results.stats import aggregate, clustered_mean, mean_ci
from msc_graph.schemas import JudgeVerdict, user_turn_model


def user_json(**over) -> str:
    base = {
        "preference_1_satisfied": "yes",
        "enforce_preferences": False,
        "reasoning": "fine",
        "draft_answer": "I don't know",
        "should_terminate": False,
        "response": "Can you help me?",
    }
    return json.dumps({**base, **over})


class Script:
    """Replies per role, in order; records what each role was sent."""

    def __init__(self, **replies: list[str]) -> None:
        self.replies = {k: list(v) for k, v in replies.items()}
        self.sent: dict[str, list] = defaultdict(list)

    def model_for(self, cfg):
        script = self

        class Recorder(FakeMessagesListChatModel):
            async def ainvoke(self, messages, *args, **kwargs):  # type: ignore[override]
                script.sent[cfg.role].append((messages, kwargs))
                queue = script.replies[cfg.role]
                text = queue.pop(0) if len(queue) > 1 else queue[0]
                meta = {"finish_reason": "length"} if text.startswith("CUT:") else {"finish_reason": "stop"}
                return AIMessage(content=text.removeprefix("CUT:"), response_metadata=meta,
                                 usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})  # fmt: skip

        return Recorder(responses=[AIMessage(content="")])


@pytest.fixture
def script(monkeypatch):
    holder: dict = {}

    def install(**replies):
        s = Script(**replies)
        monkeypatch.setattr(llm, "chat_model", s.model_for)
        holder["s"] = s
        return s

    return install


CTX = SessionContext(user_model="u", agent_model="a", judge_model="j", max_turns=3, structured="prompt", parse_retries=2)
INPUT = {
    "user_id": 0,
    "session_index": 0,
    "problem": "What is 6 x 7?",
    "solution": "42",
    "task_description": "math",
    "persona": "a tester",
    "preferences": ["Use bullet points."],
}


async def test_a_terminating_session_is_scored(script):
    script(
        user=[user_json(), user_json(draft_answer="42", should_terminate=True, response="Thanks TERMINATE")],
        agent=["<think>multiply</think>- 6 x 7 = 42"],
        judge=['{"reasoning": "same", "accuracy": 1}'],
    )
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["failure"] is None and out["task_success"] == 1 and out["ended_by"] == "terminate"
    assert [m["role"] for m in out["messages"]] == ["assistant", "user", "assistant", "user"]
    assert out["messages"][2]["content"] == "- 6 x 7 = 42"  # markup stripped for the user...
    agent_turn = next(t for t in out["turns"] if t["role"] == "agent")
    assert agent_turn["raw"].startswith("<think>")  # ...and kept in the log
    assert out["usage"]["user"]["calls"] == 2 and out["usage"]["judge"]["calls"] == 1


async def test_malformed_json_is_repaired_or_retried(script):
    s = script(
        user=[
            "not json at all",
            "```json\n" + user_json(draft_answer="42", should_terminate=True)[:-1] + "\n```",  # fenced, unclosed
        ],
        agent=["x"],
        judge=['{"reasoning": "ok", "accuracy": "1"}'],
    )
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["failure"] is None and out["task_success"] == 1
    assert out["usage"]["user"]["calls"] == 2
    retry_messages = s.sent["user"][1][0]
    assert "could not be used" in retry_messages[-1]["content"]


async def test_missing_keys_after_all_retries_is_a_user_failure(script):
    script(user=['{"response": "hi"}'], agent=["x"], judge=['{"reasoning": "r", "accuracy": 1}'])
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["failure"]["stage"] == "user"
    assert "draft_answer" in out["failure"]["reason"]
    assert out.get("task_success") is None and out.get("verdict") is None  # never judged


async def test_a_user_who_never_terminates_stops_at_max_turns(script):
    script(user=[user_json()], agent=["Sure."], judge=['{"reasoning": "no answer", "accuracy": 0}'])
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["ended_by"] == "max_turns"
    assert sum(1 for m in out["messages"] if m["role"] == "user") == CTX.max_turns
    # as in the published loop the agent answers the last user turn: 1 + 2 * max_turns messages
    assert len(out["messages"]) == 2 * CTX.max_turns + 1
    assert out["task_success"] == 0


async def test_a_judge_returning_garbage_is_a_recorded_failure_not_a_score(script):
    script(
        user=[user_json(should_terminate=True, response="TERMINATE")],
        agent=["x"],
        judge=["I think it is probably right!!"],
    )
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["failure"]["stage"] == "judge"
    assert out["task_success"] is None
    agg = aggregate([{**out, "user_effort": 0, "length": 2}])
    assert agg["task_success"].n == 0 and agg["failures"] == {"judge": 1}


async def test_enforcement_counts_as_user_effort_and_agent_json_mode(script):
    s = script(
        user=[user_json(enforce_preferences=True, response="Use bullets please"), user_json(should_terminate=True)],
        agent=['{"reasoning": "r", "response": "- ok"}'],
        judge=['{"reasoning": "r", "accuracy": 0}'],
    )
    ctx = SessionContext(**{**CTX.__dict__, "agent_reply": "json"})
    out = await graph.ainvoke(INPUT, context=ctx)
    assert out["messages"][2]["content"] == "- ok"
    from msc_graph.metrics import session_metrics

    assert session_metrics(out) == {"task_success": 0, "user_effort": 1, "length": 4}
    # the simulator sees the conversation with roles reversed and one system message first
    sent = s.sent["user"][1][0]
    assert sent[0]["role"] == "system" and [m["role"] for m in sent[1:]] == ["user", "assistant", "user"]
    assert "What is 6 x 7?" in sent[0]["content"]
    # the agent never sees the problem
    assert all("6 x 7" not in m["content"] for m in s.sent["agent"][0][0])


def test_strip_reasoning_handles_think_and_harmony():
    assert strip_reasoning("<think>a\nb</think>\n\nAnswer") == "Answer"
    assert strip_reasoning("reasoning only</think>Answer") == "Answer"
    harmony = "<|channel|>analysis<|message|>thinking<|end|><|start|>assistant<|channel|>final<|message|>Hi there<|return|>"
    assert strip_reasoning(harmony) == "Hi there"
    assert strip_reasoning("<|channel|>analysis<|message|>only thoughts") == ""  # nothing final: empty


def test_parse_json_reply_validates_and_names_the_problem():
    with pytest.raises(ValueError, match="accuracy"):
        parse_json_reply('{"reasoning": "r", "accuracy": 7}', JudgeVerdict)
    turn = parse_json_reply("<think>x</think>" + user_json(should_terminate="True"), user_turn_model(1))
    assert turn.should_terminate is True


def test_trim_keeps_system_and_newest_turns():
    msgs = [{"role": "system", "content": "S" * 40}] + [
        {"role": "user" if i % 2 else "assistant", "content": f"{i}" * 400} for i in range(10)
    ]
    trimmed = trim_to_budget(msgs, 350)
    assert trimmed[0]["role"] == "system" and trimmed[-1] == msgs[-1]
    assert 2 <= len(trimmed) < len(msgs)
    assert trimmed[1:] == msgs[len(msgs) - len(trimmed) + 1 :]


def _long_session(recalls: list[dict]) -> dict:
    """Opening, then five user/agent exchanges of about 100 estimated tokens a message."""
    messages = [{"role": "assistant", "content": "How can I help you?"}]
    for i in range(5):
        messages += [{"role": "user", "content": f"question {i} " + "q" * 400},
                     {"role": "assistant", "content": f"answer {i} " + "a" * 400}]  # fmt: skip
    messages.append({"role": "user", "content": "last question"})
    return {"messages": messages, "recall_text": recalls}


NOTES = "\n\n[notes] The user wants bullet points."


def test_notes_shown_once_survive_trimming_on_the_first_kept_user_message():
    state = _long_session([{"user_turn": 1, "text": NOTES, "placement": "user_turn"}])
    full = agent_view(state, "SYSTEM")
    assert agent_view(state, "SYSTEM", 10_000) == full  # nothing trimmed: exactly the untrimmed view
    assert full[2]["content"].endswith(NOTES) and sum(NOTES in m["content"] for m in full) == 1
    trimmed = agent_view(state, "SYSTEM", 500)
    assert trimmed[0]["content"] == "SYSTEM" and trimmed[-1]["content"] == "last question"
    assert "question 0" not in "".join(m["content"] for m in trimmed)  # the message that carried the notes is gone
    users = [m for m in trimmed[1:] if m["role"] == "user"]
    assert users[0]["content"].endswith(NOTES) and sum(NOTES in m["content"] for m in trimmed) == 1
    assert sum(len(m["content"]) // 4 + 5 for m in trimmed) <= 500
    # without the carry the same budget keeps one more message: the notes cost their room
    assert len(trim_to_budget(full, 500)) >= len(trimmed)


def test_recalls_on_kept_messages_are_not_carried_and_tiny_budgets_keep_the_last_message():
    per_turn = [{"user_turn": t, "text": f"\n[recalled for turn {t}]", "placement": "user_turn"} for t in range(1, 7)]
    state = _long_session(per_turn)
    trimmed = agent_view(state, "SYSTEM", 500)
    assert trimmed == trim_to_budget(agent_view(state, "SYSTEM"), 500)  # a later recall is still in view
    state = _long_session([{"user_turn": 1, "text": NOTES, "placement": "user_turn"}])
    tiny = agent_view(state, "SYSTEM", 10)
    assert [m["role"] for m in tiny] == ["system", "user"] and tiny[-1]["content"] == "last question" + NOTES


def test_bootstrap_and_paired_difference_on_a_known_case():
    est = mean_ci([1.0] * 10)
    assert (est.mean, est.low, est.high) == (1.0, 1.0, 1.0)
    keys = [(u, s) for u in range(20) for s in range(3)]
    diff = clustered_mean([1.0 - 0.0 for _ in keys], [u for u, _ in keys])  # b - a per pair, users as clusters
    assert diff.mean == 1.0 and diff.low == 1.0 and diff.n == 60
    mixed = mean_ci([0.0, 1.0] * 50)
    assert mixed.low < 0.5 < mixed.high


async def test_reflection_failure_keeps_the_old_notes_and_is_recorded(script, tmp_path):
    from msc_graph.graphs.memory import store_locator
    from msc_graph.memory.access import store_for

    def memory_for(ctx):
        return store_for(store_locator(ctx))

    ctx = SessionContext(**{**CTX.__dict__, "memory": "retrieval", "chroma_path": str(tmp_path / "m"), "memory_namespace": "rf"})
    old = [{"preference": "Use bullet points.", "evidence": "session 0", "how_to_satisfy": "lists"}]
    memory_for(ctx).replace(0, old, 0)
    script(
        user=[user_json(), user_json(should_terminate=True, response="TERMINATE")],
        agent=["- fine", "this is not the notes JSON"],
        judge=['{"reasoning": "r", "accuracy": 1}'],
    )
    out = await graph.ainvoke(INPUT, context=ctx)
    assert out["failure"] is None and out["task_success"] == 1  # the session itself still counts
    assert out["notes_after"] == old and "error" in out["reflection"]
    assert memory_for(ctx).list(0) == old
    assert out["retrieved"][0]["notes"][0]["preference"] == "Use bullet points."


@pytest.mark.parametrize("mode, expected", [("oracle", "Use bullet points."), ("notes", "Answer in French.")])
async def test_oracle_and_notes_modes_put_preferences_in_the_fixed_system_prompt(script, mode, expected):
    s = script(
        user=[user_json(), user_json(should_terminate=True, response="TERMINATE")],
        agent=["ok", '{"reasoning": "r", "notes": []}'],
        judge=['{"reasoning": "r", "accuracy": 1}'],
    )
    ctx = SessionContext(**{**CTX.__dict__, "memory": mode})
    notes = [{"preference": "Answer in French.", "evidence": "", "how_to_satisfy": ""}]
    out = await graph.ainvoke({**INPUT, "notes": notes}, context=ctx)
    assert out["failure"] is None
    system = s.sent["agent"][0][0][0]
    assert system["role"] == "system" and expected in system["content"]


async def test_retrieved_notes_stay_on_their_user_turn_so_the_prefix_is_stable(script, tmp_path):
    s = script(
        user=[user_json(response="first"), user_json(response="second"), user_json(should_terminate=True, response="TERMINATE")],
        agent=["a1", "a2", '{"reasoning": "r", "notes": []}'],
        judge=['{"reasoning": "r", "accuracy": 1}'],
    )
    ctx = SessionContext(**{**CTX.__dict__, "memory": "retrieval"})
    notes = [{"preference": "Use bullet points.", "evidence": "", "how_to_satisfy": "lists"}]
    await graph.ainvoke({**INPUT, "notes": notes}, context=ctx)
    first_call, second_call = s.sent["agent"][0][0], s.sent["agent"][1][0]
    assert second_call[: len(first_call)] == first_call  # earlier messages unchanged
    assert "Notes from earlier sessions" in first_call[-1]["content"]
    assert all(m["role"] != "system" for m in second_call[1:])


async def test_a_reply_cut_off_at_max_tokens_is_retried_without_the_truncated_text(script):
    s = script(
        user=[user_json(should_terminate=True, response="TERMINATE")],
        agent=["x"],
        judge=['CUT:{"reasoning": "the draft says that the the the the', '{"reasoning": "ok", "accuracy": 1}'],
    )
    out = await graph.ainvoke(INPUT, context=CTX)
    assert out["failure"] is None and out["task_success"] == 1
    (first, first_kwargs), (retry, retry_kwargs) = s.sent["judge"]
    assert "the the the" not in json.dumps(retry)  # the truncated reply is not shown again
    assert "cut off" in retry[-1]["content"]
    # the judge samples at temperature 0; its retry samples, or it would repeat the same reply
    assert "temperature" not in first_kwargs and retry_kwargs["temperature"] == llm.RETRY_TEMPERATURE
