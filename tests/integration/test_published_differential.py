"""``--protocol published`` against the published code on randomized scripted sessions.

Hypothesis writes each session's script: every reply of the user simulator, the agent, the note
selection, the notes update and the judge, varying what TS, UE and Length depend on (each user
reply key and its type, ``enforce_preferences`` in its many spellings, the draft answer, where
TERMINATE is, ``<think>`` and harmony markup around or inside a reply, empty, blank and null
replies, bare JSON scalars, a reply's own ``error`` key, the judge's accuracy from 0.5 to 1e999
and NaN). The published loop (``tests/published_harness.py``) and ours play the same scripts, and
per session must give equal TS, UE and Length, equal calls per role and the same draft graded,
except where the README's table says the published code is deliberately not copied; those
sessions are counted by the row that explains them, and nothing else may differ.

CI runs a fixed, small set of examples (a fixed seed per mode). The several-hundred-session run:
``MSC_DIFFERENTIAL_EXAMPLES=12 pytest tests/integration/test_published_differential.py -s``
(examples per agent mode, each a batch of ``SESSIONS`` sessions; the default is 2, after one batch that covers each named behaviour); ``MSC_DIFFERENTIAL_REPORT=FILE``
writes the tally as JSON.
"""

from __future__ import annotations

import itertools
import json
import os
import zlib
from collections import Counter

import pytest

from msc_graph.protocols.published import REPLY_TRIES
from tests.published_harness import (
    JSON_AGENT,
    PublishedWorker,
    post_scripts,
    require_published_code,
    run_ours,
    run_published,
    server_calls,
    start_server,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, example, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.integration

SESSIONS = 6
MAX_TURNS = 4
EXAMPLES = int(os.environ.get("MSC_DIFFERENTIAL_EXAMPLES", "2"))
MODES = {  # memory, agent model (JSON replies for Llama-3.3-70B-Instruct; harmony output kept for an *oss* model)
    "no-memory-text": (False, "scripted"),
    "no-memory-json": (False, JSON_AGENT),
    "memory-text": (True, "scripted"),
    "memory-json": (True, JSON_AGENT),
    "memory-oss": (True, "gpt-oss-20b"),
}
MISSING = object()
_ids = itertools.count()
TALLY: Counter[str] = Counter()

# -- replies ------------------------------------------------------------------------------------

HARMONY = "<|channel|>analysis<|message|>{}<|end|><|start|>assistant<|channel|>final<|message|>{}"
NOT_AN_OBJECT = st.sampled_from(
    ["", "   ", "\n\t ", None, "5", "null", "true", "I am not sure.", '"just text"', "[1, 2]", "<think>TERMINATE</think>"]
)


def wrapped(obj: dict) -> st.SearchStrategy[str]:
    """A JSON object as a model may write it: plain, fenced, after a ``<think>`` block (with or
    without braces or TERMINATE in it), inside harmony markup, or followed by prose."""
    text = json.dumps(obj)
    return st.sampled_from([
        text, f"```json\n{text}\n```", f"<think>Should I say TERMINATE?</think>\n{text}",
        f'<think>{{"response": "TERMINATE"}}</think>{text}', HARMONY.format("maybe TERMINATE", text),
        f"{text} TERMINATE",
    ])  # fmt: skip


def obj(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not MISSING}


def user_reply(tag: str) -> st.SearchStrategy:
    response = st.one_of(
        st.sampled_from([
            f"Go on. {tag}", f"Thanks, done. {tag} TERMINATE", f"TERMINATE {tag}", f"terminate {tag}",
            f"<think>I could TERMINATE now</think> go on {tag}", HARMONY.format("TERMINATE", f"go on {tag}"),
        ]),
        st.sampled_from([[f"go on {tag}"], ["TERMINATE", tag], 7]),
    )  # fmt: skip
    fields = st.fixed_dictionaries(
        {
            "reasoning": st.sampled_from(["r", MISSING]),
            "draft_answer": st.sampled_from(["I don't know", "7", "FINAL 7", "", 7, None, [7], MISSING]),
            "should_terminate": st.sampled_from([True, False, "true", "no", MISSING]),
            "response": response,
            "enforce_preferences": st.sampled_from([True, False, "True", "true", 1, 0, 1.0, "yes", None, 2, MISSING]),
            "error": st.sampled_from([MISSING, MISSING, "oops", None]),
        }
    )
    usable = fields.map(lambda f: obj(**f)).flatmap(wrapped)
    return st.one_of(usable, usable, usable, NOT_AN_OBJECT)


def agent_reply() -> st.SearchStrategy:
    text = st.sampled_from(["An answer.", "", "  ", None, "<think>TERMINATE</think> An answer.",
                            HARMONY.format("thinking", "An answer."), "<|channel|>analysis<|message|>only thinking"])  # fmt: skip
    fields = st.fixed_dictionaries(
        {
            "reasoning": st.sampled_from(["r", MISSING]),
            "response": st.sampled_from(["An answer.", "", "TERMINATE", 3]),
            "draft_answer": st.sampled_from([MISSING, MISSING, "agent draft"]),
            "enforce_preferences": st.sampled_from([MISSING, MISSING, True, "True"]),
            "error": st.sampled_from([MISSING, MISSING, "oops"]),
        }
    )
    return st.one_of(text, fields.map(lambda f: obj(**f)).flatmap(wrapped), NOT_AN_OBJECT)


def select_reply() -> st.SearchStrategy:
    fields = st.fixed_dictionaries(
        {"reasoning": st.sampled_from(["r", MISSING]), "relevant_notes": st.sampled_from(["- bullets", "", ["a", "b"], None, MISSING])}
    )
    return st.one_of(fields.map(lambda f: obj(**f)).flatmap(wrapped), fields.map(lambda f: obj(**f)).flatmap(wrapped), NOT_AN_OBJECT)


def notes_reply() -> st.SearchStrategy:
    fields = st.fixed_dictionaries(
        {"user_preferences_reasoning": st.sampled_from(["r", MISSING]),
         "agent_notes": st.sampled_from(["- wants bullets", "", ["a"], None, 5, MISSING])}  # fmt: skip
    )
    return st.one_of(fields.map(lambda f: obj(**f)).flatmap(wrapped), NOT_AN_OBJECT, st.sampled_from(["plain notes", ""]))


ACCURACY = (["0", "1", "0.5", '"1"', '"0"', "true", "false", "2", "1.0", '" 1 "'],  # int() reads these
            ["1e999", "-1e999", "NaN", "nan", '"yes"', "null", "[1]", '"0.5"'])  # and not these  # fmt: skip


def judge_reply() -> st.SearchStrategy:
    readable, unreadable = ([f'{{"reasoning": "r", "accuracy": {a}}}' for a in values] for values in ACCURACY)
    return st.sampled_from(readable * 3 + unreadable + ['{"reasoning": "r"}', "", "<think>1</think>", "5"])


def session_script(sid: str) -> st.SearchStrategy[dict]:
    tag = f"[script:{sid}]"
    return st.fixed_dictionaries(
        {
            "user": st.lists(user_reply(tag), max_size=9),
            "agent": st.lists(agent_reply(), max_size=6),
            "select": st.lists(select_reply(), max_size=5),
            # now and then ten unusable updates in a row: the notes update fails
            "notes": st.integers(0, 9).flatmap(lambda k: st.just(["5"] * 10) if k == 7 else st.lists(notes_reply(), max_size=4)),
            "judge": st.lists(judge_reply(), min_size=1, max_size=2),
        }
    )


@st.composite
def batches(draw) -> dict[str, dict]:
    """``SESSIONS`` sessions of one user, each with its own script, by session id."""
    ids = [f"s{next(_ids)}" for _ in range(SESSIONS)]
    return {sid: draw(session_script(sid)) for sid in ids}


def coverage_batch(mode: str) -> dict[str, dict]:
    """One batch that has each behaviour the issue names at least once, whatever the seed draws."""
    def user(tag: str, **over) -> str:
        return json.dumps({"reasoning": "r", "draft_answer": "d", "should_terminate": False, "response": f"go on {tag}", **over})

    def done(tag: str, **over) -> str:
        return user(tag, draft_answer="FINAL 7", response=f"thanks {tag} TERMINATE", **over)

    t = [f"[script:{mode}-c{i}]" for i in range(6)]
    scripts = [
        {"user": ["", "   \n", "<think>I could say TERMINATE</think>" + user(t[0], enforce_preferences=True),
                  user(t[0], response=f"<think>TERMINATE?</think> done {t[0]}", enforce_preferences="True", error="x")],
         "agent": ["", "  ", '{"reasoning": "r", "response": "ok"}'], "judge": ['{"reasoning": "r", "accuracy": 1e999}']},
        {"user": [user(t[1]), None, done(t[1])], "judge": ['{"reasoning": "r", "accuracy": NaN}']},  # null: a restart
        {"user": [HARMONY.format("TERMINATE", user(t[2])), done(t[2], error="x", enforce_preferences=1)],
         "select": ["5"], "judge": ['{"reasoning": "r", "accuracy": "1"}']},
        {"user": [user(t[3]), done(t[3])], "select": [""] * 10, "judge": ['{"reasoning": "r", "accuracy": 0.5}']},
        {"user": [user(t[4], enforce_preferences=1), done(t[4])], "notes": ["5", "null", "true"],
         "judge": ['{"reasoning": "r", "accuracy": "yes"}']},
        {"user": ["5", "null", done(t[5])], "judge": ['{"reasoning": "r"}']},
    ]  # fmt: skip
    return {f"{mode}-c{i}": script for i, script in enumerate(scripts)}


# -- comparison ---------------------------------------------------------------------------------

#: The README rows a session may differ by, as the test recognises them.
NOTES_UPDATE_FAILED = "a failed notes update keeps the earlier notes"
STACKED_SELECTION = "a JSON agent reply asked again is not given a second selection"
JUDGE_FAILURE = "a judge reply int() cannot read is a judge failure"


def compare(sid: str, theirs: list[dict], ours: dict, t_calls: dict, o_calls: dict, memory: bool, json_agent: bool) -> str:
    """``agree`` / ``dropped`` (both gave the session up), a README row, or what differs."""
    if memory and (ours.get("reflection") or {}).get("error"):  # only when every try was used, on both sides
        tries = (o_calls.get("calls", {}).get("notes"), t_calls.get("calls", {}).get("notes", 0))
        if tries[0] == REPLY_TRIES and tries[1] >= REPLY_TRIES:
            return NOTES_UPDATE_FAILED
        return f"DIFF ours gave the notes update up after {tries[0]} tries; published made {tries[1]}"
    if memory and json_agent and "aa" in o_calls.get("order", ""):
        return STACKED_SELECTION
    same_calls = t_calls.get("calls") == o_calls.get("calls") and t_calls.get("judged") == o_calls.get("judged")
    fail = ours.get("failure") or {}
    if not theirs:
        ok = fail.get("stage") in ("user", "agent", "memory") and same_calls
        return "dropped" if ok else f"DIFF published dropped it; ours {fail or 'kept it'}; calls {t_calls} vs {o_calls}"
    if len(theirs) > 1:
        return f"DIFF published kept it {len(theirs)} times"
    t = theirs[0]
    got = {"ts": ours.get("task_success"), "ue": ours.get("user_effort"), "len": ours.get("length"), "judge_failed": fail.get("stage") == "judge"}
    want = {"ts": t["task_success"], "ue": t["user_effort"], "len": t["length"], "judge_failed": t["judge_error"] is not None}
    if got != want or not same_calls or (fail and fail.get("stage") != "judge"):
        return f"DIFF ours {got} {fail or ''} vs published {want}; calls {o_calls} vs {t_calls}"
    return JUDGE_FAILURE if want["judge_failed"] else "agree"


def play(tmp_path, servers, worker: PublishedWorker, mode: str, scripts: dict[str, dict]) -> Counter[str]:
    memory, model = MODES[mode]
    theirs_server, ours_server = servers
    for server in servers:
        post_scripts(server, scripts)
    samples = [{"problem": f"Problem {i}: how many sides has a heptagon? [script:{sid}]", "solution": "7"}
               for i, sid in enumerate(scripts)]  # fmt: skip
    theirs = run_published(tmp_path, theirs_server, samples, memory=memory, model=model, max_turns=MAX_TURNS, worker=worker)
    ours = run_ours(tmp_path, ours_server, samples, memory=memory, model=model, max_turns=MAX_TURNS, in_process=True)
    t_sessions, o_sessions = server_calls(theirs_server)["sessions"], server_calls(ours_server)["sessions"]
    outcome: Counter[str] = Counter()
    for sample, sid in zip(samples, scripts, strict=True):
        mine = [t for t in theirs if t["problem"] == sample["problem"]]
        verdict = compare(sid, mine, ours[sample["problem"]], t_sessions.get(sid, {}), o_sessions.get(sid, {}), memory, model == JSON_AGENT)
        outcome[verdict if not verdict.startswith("DIFF") else f"DIFF {mode} {sid}: {verdict[5:]} script {scripts[sid]}"] += 1
    return outcome


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """Two servers per agent model, and one published driver, for the whole module."""
    require_published_code()
    started: dict[str, tuple] = {}
    worker = PublishedWorker(tmp_path_factory.mktemp("published"))

    def get(model: str):
        if model not in started:
            started[model] = (start_server(model), start_server(model))
        return started[model], worker

    yield get
    worker.close()
    for pair in started.values():
        for server in pair:
            server.stop()
    report = os.environ.get("MSC_DIFFERENTIAL_REPORT")
    if report:
        with open(report, "w") as fh:
            json.dump(dict(TALLY), fh, indent=1)


@pytest.mark.parametrize("mode", list(MODES))
def test_published_protocol_scores_randomized_sessions_as_the_published_code(tmp_path_factory, harness, mode):
    servers, worker = harness(MODES[mode][1])

    seen: Counter[str] = Counter()

    played: list[int] = []

    @seed(zlib.crc32(mode.encode()))  # fixed scripts in CI, other ones for each mode
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @example(coverage_batch(mode))
    @given(batches())
    def differential(scripts):
        seen.update(play(tmp_path_factory.mktemp(mode), servers, worker, mode, scripts))
        played.append(len(scripts))

    differential()  # every example is played; the disagreements are listed together
    TALLY.update(seen)
    print(f"\n{mode}: {sum(seen.values())} sessions: " + json.dumps({k: v for k, v in seen.items() if not k.startswith("DIFF")}))
    diffs = [k for k in seen if k.startswith("DIFF")]
    assert not diffs, "\n".join(diffs)
    assert len(played) == EXAMPLES + 1 and sum(seen.values()) == sum(played)
