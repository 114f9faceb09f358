"""``notes``: every note the agent has learned, in its system prompt, all session long.

Notes are learned after each session by reflection (:class:`Reflecting`, shared with the
``retrieval`` and ``select`` designs): the agent's model rewrites the user's notes from the
finished conversation; the user's Chroma collection keeps them.
"""

from __future__ import annotations

from typing import Any

from msc_graph.llm import call_json
from msc_graph.memory.access import astore_for
from msc_graph.memory.designs.base import Learned, LearnFailed, MemoryDesign, SessionInfo
from msc_graph.memory.notes import notes_as_text
from msc_graph.prompts import AGENT_NOTES_BLOCK, REFLECTION_PROMPT, transcript_text
from msc_graph.schemas import ReflectionResult


def reflection_messages(notes: list[dict], messages: list[dict]) -> list[dict]:
    """What reflection sends the model: the notes so far and the finished conversation (training
    builds its prompts with this too, so they are the same bytes)."""
    prompt = REFLECTION_PROMPT.format(notes=notes_as_text(notes), conversation=transcript_text(messages))
    return [{"role": "user", "content": prompt}]


class Reflecting(MemoryDesign):
    """Notes kept per user in the store, updated by a reflection call after each session."""

    learns = True
    uses_store = True

    async def start(self, session: SessionInfo, given: Any | None) -> Any:
        if not session.from_store:
            return [dict(n) for n in given or []]
        store = await astore_for(self.settings.store)
        notes, _ = await store.anotes(session.user_id, with_vectors=False)
        return [dict(n) for n in notes]

    async def learn(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Learned:
        before = memory or []
        result = await call_json(self.settings.reflector, reflection_messages(before, messages), ReflectionResult)
        usage = {"agent_reflect": result.usage.as_dict()}
        if not result.ok and result.kind == "infrastructure":  # the server: a rerun learns again
            raise LearnFailed(f"reflection: {result.error}", infrastructure=True)
        if not result.ok:  # replies that stayed unusable: the old notes stay
            return Learned(before, usage, {"error": result.error, "raw": result.raw})
        notes = [n.model_dump() for n in result.value.notes if n.preference.strip()]
        if session.from_store:  # the store is the memory: replace the user's notes atomically
            store = await astore_for(self.settings.store)
            await store.areplace(session.user_id, notes, session.session_index)
        return Learned(notes, usage, {"reasoning": result.value.reasoning, "raw": result.raw[-1]})

    async def restore(self, user_id: int | str, memory: Any) -> None:
        store = await astore_for(self.settings.store)
        await store.arestore(user_id, memory or [])


class AllNotes(Reflecting):
    name = "notes"

    def system_block(self, memory: Any, session: SessionInfo) -> str:
        return AGENT_NOTES_BLOCK.format(notes=notes_as_text(memory or []))
