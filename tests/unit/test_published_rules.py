"""The published protocol's rules for reading replies, ending sessions, counting effort and grading
(checked here on their own; tests/integration/test_published_protocol.py runs them beside the
published code)."""

from __future__ import annotations

import pytest

from msc_graph.protocols import effort_counter
from msc_graph.protocols import published as rules


def test_a_reply_is_usable_when_every_key_is_in_what_json_repair_returns():
    text = '```json\n{"reasoning": "r", "draft_answer": 42, "should_terminate": "yes", "response": ["TERMINATE"]}\n```'
    value = rules.with_keys(text, rules.USER_KEYS)
    assert value["draft_answer"] == 42 and value["should_terminate"] == "yes"  # types are kept
    with pytest.raises(rules.Unusable) as prose:
        rules.with_keys("I think the answer is four.", rules.USER_KEYS)
    assert prose.value.retry  # another of the ten tries
    for bare in ("42", "true", "null", None):  # the published key test itself fails: the session restarts
        with pytest.raises(rules.Unusable) as err:
            rules.with_keys(bare, rules.USER_KEYS)
        assert not err.value.retry
        with pytest.raises(rules.Unusable) as err:  # ... except in the notes update, whose loop catches it
            rules.with_keys(bare, rules.NOTES_KEYS, caught=True)
        assert err.value.retry
    for empty in ("", "   ", "\n\t"):  # repaired to "", which lacks every key: asked again
        with pytest.raises(rules.Unusable) as err:
            rules.with_keys(empty, rules.USER_KEYS)
        assert err.value.retry
    with pytest.raises(rules.Unusable) as named:  # a list of the key names has them all, but is no object
        rules.with_keys('["reasoning", "response"]', rules.AGENT_KEYS)
    assert not named.value.retry


def test_reasoning_markup_is_read_as_it_came():
    think = '<think>I will say TERMINATE</think>{"reasoning": "r", "response": "go on"}'
    assert rules.with_keys(think, rules.AGENT_KEYS)["response"] == "go on"
    inside = '{"reasoning": "r", "response": "<think>TERMINATE?</think> go on"}'
    assert rules.terminates(rules.with_keys(inside, rules.AGENT_KEYS)["response"], "TERMINATE")  # nothing is stripped
    harmony = "<|channel|>analysis<|message|>TERMINATE<|end|><|start|>assistant<|channel|>final<|message|>Hi <|return|>"
    assert rules.oss_final(harmony) == "Hi"  # an *oss* agent keeps its final channel, as published
    assert rules.oss_final("<|channel|>analysis<|message|>only thinking") is None
    assert rules.oss_final("") == ""


def test_the_session_ends_on_the_signal_in_the_response_only():
    assert rules.terminates("Thanks! TERMINATE", "TERMINATE")
    assert rules.terminates(["TERMINATE"], "TERMINATE")  # membership in a list, as published
    assert not rules.terminates("thanks, I'm done", "TERMINATE")  # should_terminate is not read
    with pytest.raises(rules.Unusable):
        rules.terminates(7, "TERMINATE")


@pytest.mark.parametrize(
    "value, counts",
    [(True, True), ("True", True), (1, True), (1.0, True), ("true", False), ("yes", False), ("1", False), (2, False)],
)
def test_user_effort_counts_as_the_published_run_script_does(value, counts):
    turns = [{"role": "user", "enforce_preferences": value}, {"role": "user"}]  # a missing key counts 0
    assert rules.user_effort(turns) == int(counts)
    assert effort_counter("published") is rules.user_effort


def test_ours_reads_enforce_preferences_as_a_boolean():
    ours = effort_counter("ours")
    assert ours([{"role": "user", "enforce_preferences": v} for v in (True, "true", "yes", "1", False, "no")]) == 4


def test_the_graded_draft_is_the_last_entry_or_the_one_before():
    terminated = [{"role": "user", "draft_answer": "a"}, {"role": "agent", "response": "x"}, {"role": "user", "draft_answer": "b"}]
    assert rules.graded_draft(terminated) == "b"
    capped = [*terminated, {"role": "agent", "response": "y"}]  # max_turns: the agent answered last
    assert rules.graded_draft(capped) == "b"
    json_agent = [*terminated, {"role": "agent", "response": "y", "draft_answer": "z"}]
    assert rules.graded_draft(json_agent) == "z"
    own_error = [*terminated[:2], {"role": "user", "draft_answer": "b", "error": "a key the user wrote"}]
    assert rules.graded_draft(own_error) == "b"


@pytest.mark.parametrize("given, score", [("1", 1), (True, 1), (1.0, 1), (0.5, 0), (2, 2), (" 1 ", 1)])
def test_the_judges_accuracy_is_read_with_int(given, score):
    assert rules.accuracy({"accuracy": given}) == score


@pytest.mark.parametrize("given", ["yes", "1.0", None, [1], float("inf"), float("nan"), "nan"])
def test_what_int_cannot_read_is_a_judge_failure(given):
    with pytest.raises((TypeError, ValueError, OverflowError)):  # the three judge_turn records as a failure
        rules.accuracy({"accuracy": given})


def test_preferences_and_conversations_are_written_as_published():
    assert rules.numbered(["a", "b"]) == "1. a\n2. b"
    convo = [{"role": "assistant", "content": "How can I help you?"}, {"role": "user", "content": "hi"}]
    assert rules.conversation_string(convo) == "Assistant: How can I help you?\nUser: hi"


def test_the_agent_context_is_cut_from_the_message_after_the_system_prompt():
    messages = [{"role": "system", "content": "s"}, *({"role": "user", "content": "word " * 400} for _ in range(5))]
    kept = rules.truncate(messages, "scripted", budget=1000)
    assert kept[0]["role"] == "system" and len(kept) < len(messages)
    assert rules.count_tokens("scripted", kept) <= 1000 < rules.count_tokens("scripted", messages)
    assert kept[1:] == messages[len(messages) - len(kept) + 1 :]  # the newest messages are the ones kept
