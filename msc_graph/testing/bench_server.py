"""One scripted server for the benchmarks that compare msc_graph with the published code (loopback only).

It answers both dialects on the same port, so every runner of a benchmark meets the same server:
the published prompts as ``published_server`` does (the published code's own loop, and
``--protocol published``), and msc_graph's own prompts as ``scripted_server`` does (its moves: the
user enforces bullet points until the agent uses them), in the published server's words, so that a
reply costs the same in both dialects. In both the simulated user ends the session on turn
``--terminate-after`` (default 3). Two options make it useful for measuring what a
session costs a real server:

- ``--agent-words N`` / ``--user-words N`` / ``--notes-words N``: pad every agent reply, every user
  reasoning and every note (ours: each note's ``how_to_satisfy``; published: the notes document and
  each selection of relevant notes, which a real model words anew every time) with N words of filler, so conversations and notes grow at a realistic rate (a scripted reply is
  a dozen tokens, a real model's a few hundred); both dialects get the same padding. The padding
  opens with a digest of the request, and a padded user's message carries it too, so no two
  sessions' conversations are alike (else a prefix cache would reuse one user's conversation for
  the next, which real sessions never allow);
- ``--log PATH``: write one JSON line per chat request (role, dialect, the messages, the reply),
  for ``bench/server_cost.py`` to count tokens and what an ideal prefix cache would reuse;
- ``--distinct-notes``: each user's note has words of its own (numbered), kept in the user's later
  sessions, so every user has a note text of its own to embed; by default every user ends up with
  the same note text (which a process embeds once).

``--latency`` and ``--capacity`` are the scripted server's (a saturated GPU server).

Run: ``python -m msc_graph.testing.bench_server --port 0 --published-code PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from typing import Any

from msc_graph.prompts import ROLE_MARKS
from msc_graph.testing.published_server import PublishedScriptedServer
from msc_graph.testing.scripted_server import ScriptedServer, add_server_args, serve_until_interrupted

#: Our roles by the mark in their first message (anything else is the agent).
OUR_ROLES = {mark: role for role, mark in ROLE_MARKS.items()}
FILLER = (
    "so the next step applies the same rule to the remaining terms and checks that each result "
    "still satisfies the original condition before we combine them into one final expression"
).split()


def filler(words: int) -> str:
    return " ".join(FILLER[i % len(FILLER)] for i in range(words))


class BenchServer(PublishedScriptedServer):
    def __init__(self, published_code: str, agent_words: int = 0, user_words: int = 0, notes_words: int = 0,
                 log: str = "", distinct_notes: bool = False, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(published_code, **kwargs)
        self.distinct_notes = distinct_notes
        self.reflections = 0
        self.pads = {role: " " + filler(n) if n else "" for role, n in
                     (("agent", agent_words), ("user", user_words), ("notes", notes_words), ("reflect", notes_words),
                      ("select", notes_words))}  # fmt: skip
        self._log = open(log, "a", buffering=1) if log else None  # noqa: SIM115 - open for the server's life

    def reply_for(self, body: dict) -> str:
        messages = body.get("messages") or []
        role = self.role_of(messages)
        if role != "unknown":
            dialect, content = "published", super().reply_for(body)
        else:
            first = str(messages[0].get("content") or "") if messages else ""
            role = next((r for mark, r in OUR_ROLES.items() if mark in first), "agent")
            dialect = "ours"
            if role == "agent":
                content = self._our_agent(body, messages)
            elif role == "judge":  # the published judge's words
                ok = "FINAL" in str(messages[0].get("content") or "").split("## Draft answer", 1)[-1]
                content = json.dumps({"reasoning": "compared", "accuracy": 1 if ok else 0})
            else:
                content = ScriptedServer.reply_for(self, body)
        content = self._padded(role, content, messages)
        if role == "reflect" and self.distinct_notes:
            content = self._numbered_notes(content, messages)
        if self._log is not None:
            self._log.write(json.dumps({"role": role, "dialect": dialect, "messages": messages, "reply": content}) + "\n")
        return content

    def _our_agent(self, body: dict, messages: list[dict]) -> str:
        """Our agent's reply in the published agent's words (bullet points once it knows they are
        wanted, as ``scripted_server``'s agent), so that both dialects' replies cost the same."""
        knows = any("bullet" in str(m.get("content") or "").lower() for m in messages)
        text = f"{'- ' if knows else ''}a step towards the answer (reply {len(messages)})"
        return json.dumps({"reasoning": "help", "response": text}) if body.get("response_format") else text

    def _user_reply(self, messages: list[dict]) -> dict:
        """Our simulated user (``scripted_server``'s moves) in the published user's words."""
        reply = super()._user_reply(messages)
        for key, value in reply.items():
            if key.startswith("preference_") and str(value).startswith("yes"):
                reply[key] = "yes"
        turn = sum(1 for m in messages[1:] if m["role"] == "user")
        if reply["should_terminate"]:
            reply.update(reasoning="going on", draft_answer="FINAL 7", response=f"Thanks, that is all. {self.signal}")
        elif not reply["enforce_preferences"]:
            reply.update(reasoning="going on", draft_answer="I don't know", response=f"I need more help (turn {turn}).")
        return reply

    def _user(self, messages: list[dict], scenario: str) -> str:
        """The published user as ``published_server``'s, but ending on turn ``terminate_after``."""
        if scenario != "terminate_at_3":
            return super()._user(messages, scenario)
        reply = json.loads(super()._user(messages, "max_turns"))
        if sum(1 for m in messages[1:] if m["role"] == "user") >= self.terminate_after:
            reply.update(draft_answer="FINAL 7", should_terminate=True, response=f"Thanks, that is all. {self.signal}")
        return json.dumps(reply)

    def _numbered_notes(self, content: str, messages: list[dict]) -> str:
        """Our reflection's note in words of this user's own: a number the first time the user gets
        a note, the same number (the same text) in every later session, as a model that keeps an
        unchanged preference's wording would."""
        earlier = re.search(r"\(user note (\d+)\)", str(messages[0].get("content") or "").split("## The conversation")[0])
        if earlier:
            number = int(earlier.group(1))
        else:
            self.reflections += 1
            number = self.reflections
        data = json.loads(content)
        for note in data.get("notes") or []:
            note["how_to_satisfy"] = f"{note.get('how_to_satisfy', '')} (user note {number})"
        return json.dumps(data)

    def _padded(self, role: str, content: str, messages: list[dict]) -> str:
        """``content`` padded for ``role``, the padding opened by a digest of the request, so that
        no two sessions' conversations are alike (different users' real sessions never are)."""
        pad = self.pads.get(role, "")
        if not pad:
            return content
        tag = hashlib.sha1(json.dumps(messages).encode("utf-8", "surrogatepass")).hexdigest()[:10]
        pad = f" ({tag}){pad}"
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if not isinstance(data, dict):  # a text reply (or a deliberately unusable one)
            return content + pad if role in ("agent", "notes") else content
        if role == "reflect":  # each of our notes says more about how to satisfy it
            for note in data.get("notes") or []:
                note["how_to_satisfy"] = str(note.get("how_to_satisfy", "")) + pad
        elif role == "user":  # a longer reasoning; the message the agent reads is this session's own
            for key, extra in (("reasoning", pad), ("response", f" ({tag})")):
                if isinstance(data.get(key), str):
                    data[key] += extra
        else:
            key = {"agent": "response", "notes": "agent_notes", "select": "relevant_notes"}[role]
            if isinstance(data.get(key), str):
                data[key] += pad
        return json.dumps(data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(ap)
    ap.add_argument("--published-code", required=True, help="a checkout of the published code (its prompts are read)")
    ap.add_argument("--agent-words", type=int, default=0, help="filler words added to every agent reply")
    ap.add_argument("--user-words", type=int, default=0, help="filler words added to every user reasoning")
    ap.add_argument("--notes-words", type=int, default=0, help="filler words added to every note (ours) or notes update (published)")
    ap.add_argument("--log", default="", help="append one JSON line per chat request to this file")
    ap.add_argument("--distinct-notes", action="store_true",
                    help="each user's note (ours) has words of its own (by default every user gets the same note)")
    args = ap.parse_args(argv)
    server = BenchServer(
        args.published_code, args.agent_words, args.user_words, args.notes_words, args.log, args.distinct_notes,
        model=args.model, latency=args.latency, capacity=args.capacity, terminate_after=args.terminate_after,
    )  # fmt: skip
    serve_until_interrupted(server, args.host, args.port)


if __name__ == "__main__":
    main()
