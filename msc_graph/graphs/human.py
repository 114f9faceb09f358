"""A person in the user's seat: drive a session graph whose user node pauses with ``interrupt()``.

The user node (``user_kind="human"``) asks for the person's message through ``interrupt()``;
:func:`run_with_person` runs the graph with an in-memory checkpointer, hands each question to an
``ask`` callable and resumes with the answer until the session ends. :class:`TerminalPerson` is
that callable for a terminal: it shows the problem and the agent's messages and reads lines.

Commands a person can type:
  /end [final answer]   end the session (optionally giving the final answer)
  /answer TEXT          set your current answer without ending
  /remind TEXT          send TEXT and mark it as a reminder of a preference (counts as user effort)
  /notes                show what the agent has learned about you (when memory is on)
  /help                 this list
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from msc_graph.config import SessionContext
from msc_graph.graphs.session import builder
from msc_graph.prompts import TERMINATION_SIGNAL

Ask = Callable[[dict], Awaitable[dict | str]]

_graph_with_saver = None


def _interactive_graph():
    global _graph_with_saver
    if _graph_with_saver is None:
        _graph_with_saver = builder.compile(checkpointer=InMemorySaver(), name="session")
    return _graph_with_saver


class SessionAborted(Exception):
    """The person left in the middle of a session (``/quit`` or end of input); nothing is recorded."""


async def run_with_person(inputs: dict, ctx: SessionContext, ask: Ask) -> dict:
    """Run one session with a person answering every user turn; returns the final state."""
    if ctx.user_kind != "human":
        raise ValueError("run_with_person needs a context with user_kind='human'")
    graph = _interactive_graph()
    config = {"configurable": {"thread_id": f"person-{uuid.uuid4().hex}"}}
    payload: Any = inputs
    while True:
        state = await graph.ainvoke(payload, config, context=ctx)
        pending = state.get("__interrupt__") if isinstance(state, dict) else None
        if not pending:
            return state
        payload = Command(resume=await ask(pending[0].value))


HELP = __doc__.split("Commands a person can type:\n", 1)[1]


@dataclass
class TerminalPerson:
    """Reads a person's turns from a terminal (or any text stream)."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    #: Called by ``/notes``; returns the notes to show.
    notes: Callable[[], Awaitable[list[dict]]] | None = None
    #: Shown once at the start of each session (the problem, a profile to play).
    briefing: str = ""
    _shown: bool = False

    def start_session(self, briefing: str) -> None:
        self.briefing, self._shown = briefing, False

    def say(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    async def read_line(self, prompt: str) -> str:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        if not line:
            raise SessionAborted("end of input")
        return line.rstrip("\n")

    async def __call__(self, question: dict) -> dict:
        if not self._shown:
            self._shown = True
            if self.briefing:
                self.say(self.briefing)
            self.say("(type /help for commands)")
        self.say(f"\nagent> {question.get('agent_message', '')}\n")
        answer: str | None = None
        while True:
            text = (await self.read_line("you> ")).strip()
            command, _, rest = text.partition(" ")
            rest = rest.strip()
            if command == "/help":
                self.say(HELP)
            elif command == "/quit":
                raise SessionAborted("the person quit")
            elif command == "/notes":
                await self._show_notes()
            elif command == "/answer":
                answer = rest or None
                self.say(f"(your answer is now: {answer or 'none'})")
            elif command == "/end":
                return _reply(f"Thanks, that is all. {TERMINATION_SIGNAL}", rest or answer, end=True)
            elif command == "/remind":
                if rest:
                    return _reply(rest, answer, remind=True)
                self.say("(/remind needs a message)")
            elif command.startswith("/"):
                self.say(f"(unknown command {command}; /help lists them)")
            elif text:
                return _reply(text, answer)

    async def _show_notes(self) -> None:
        if self.notes is None:
            self.say("(this agent has no memory)")
            return
        notes = await self.notes()
        if not notes:
            self.say("(the agent has not learned anything about you yet)")
        for n in notes:
            self.say(f"  - {n.get('preference', '')}" + (f"  (how: {n['how_to_satisfy']})" if n.get("how_to_satisfy") else ""))


def _reply(response: str, answer: str | None, *, end: bool = False, remind: bool = False) -> dict:
    out: dict = {"response": response, "end": end, "enforce_preferences": remind}
    if answer:
        out["draft_answer"] = answer
    return out
