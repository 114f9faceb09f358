"""``published``: the published study's memory design (``--protocol published`` with memory).

- The memory is one free-text notes document per user, kept in the user's Chroma collection as a
  single note (so resume, Studio, reports and exports work as for the other designs).
- The agent's system prompt embeds the whole document (the published "reflective" prompts).
- Before every agent turn, session 1 included, a selection call (the published scaffolding
  prompt) extracts the notes relevant to the conversation so far; the published intro line and
  the selection are put before the opening message's text, with no separator, as published.
- After a session, a notes call (the published update prompt) rewrites the document from the
  conversation. In JSON mode (a Llama-3.3-70B-Instruct agent) it must answer with
  ``user_preferences_reasoning`` and ``agent_notes``, in up to ten tries.

Not copied from the published code (each loses or distorts data): a failed notes update keeps
the previous document (the published code resets the notes to ``None`` and stores the session
twice); a selection is made once per agent turn (the published code makes a new one, and stacks
its intro again, for every retry of a JSON agent reply).
"""

from __future__ import annotations

from typing import Any

from msc_graph.config import agent_replies_in_json
from msc_graph.memory.access import astore_for
from msc_graph.memory.designs.base import (
    Learned,
    LearnFailed,
    MemoryDesign,
    Recall,
    RecallFailed,
    SessionInfo,
)
from msc_graph.protocols import published as rules
from msc_graph.protocols.published_source import load_published


def as_notes(document: str) -> list[dict]:
    """The document as the store keeps it: one note (none for an empty document)."""
    return [{"preference": document, "evidence": "", "how_to_satisfy": ""}] if document else []


def as_document(memory: Any) -> str:
    """A user's notes document from what a record, an input or the store holds."""
    if memory is None:
        return ""
    if isinstance(memory, str):
        return memory
    return "\n".join(str(n.get("preference", "")) if isinstance(n, dict) else str(n) for n in memory)


class PublishedNotes(MemoryDesign):
    name = "published"
    learns = True
    recalls = True
    uses_store = True

    def texts(self):
        return load_published(self.settings.context.published_code)

    async def start(self, session: SessionInfo, given: Any | None) -> str:
        if not session.from_store:
            return as_document(given)
        store = await astore_for(self.settings.store)
        notes, _ = await store.anotes(session.user_id, with_vectors=False)
        return as_document(notes)

    def template_notes(self, memory: Any) -> str:
        return as_document(memory)

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        prompt = self.texts().templates["proper_scaffolding_prompt"].format(
            conversation_history=rules.conversation_string(messages), complete_agent_notes=as_document(memory)
        )
        got = await rules.reply_with_keys(self.settings.agent, [{"role": "user", "content": prompt}], rules.SELECT_KEYS, agent=True)
        if got.error is not None:  # the published loop generates the session again, with no agent call first
            raise RecallFailed(f"note selection: {got.error}", infrastructure=got.kind == "infrastructure")
        selected = got.value["relevant_notes"]
        text = f"{self.texts().notes_intro}{selected}"
        return Recall(shown=selected, text=text, placement="opening", usage={"agent_select": got.usage.as_dict()})

    async def learn(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Learned:
        before = as_document(memory)
        prompt = self.texts().templates["update_agent_notes_prompt"].format(
            agent_notes=before, conversation_str=rules.conversation_string(messages)
        )
        request = [{"role": "user", "content": prompt}]
        cfg = self.settings.agent
        if agent_replies_in_json(self.settings.context):  # a bare 5, null or true is asked again, as published
            got = await rules.reply_with_keys(cfg, request, rules.NOTES_KEYS, agent=True, caught=True)
            after = None if got.error else got.value["agent_notes"]
            reasoning = None if got.error else got.value.get("user_preferences_reasoning")
            usage, error, raw, kind = got.usage, got.error, got.raw, got.kind
        else:  # the reply as it came is the document (an empty one too)
            result = await rules.reply_text(cfg, request)
            after, reasoning = rules.agent_text(cfg, result.value), None
            usage, error, raw, kind = result.usage, result.error, result.raw, result.kind
        used = {"agent_reflect": usage.as_dict()}
        if error is not None and kind == "infrastructure":
            raise LearnFailed(f"notes update: {error}", infrastructure=True)
        if error is not None:  # the previous document stays (the published code would lose it)
            return Learned(before, used, {"error": error, "raw": raw})
        document = after if isinstance(after, str) else ("" if not after else str(after))
        if session.from_store:
            store = await astore_for(self.settings.store)
            await store.areplace(session.user_id, as_notes(document), session.session_index)
        return Learned(document, used, {"reasoning": reasoning, "raw": raw[-1] if raw else None})

    async def restore(self, user_id: int | str, memory: Any) -> None:
        store = await astore_for(self.settings.store)
        await store.arestore(user_id, as_notes(as_document(memory)))
