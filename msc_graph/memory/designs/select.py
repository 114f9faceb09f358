"""``select``: before each agent turn the agent's model picks the notes that matter for its next
reply (a note-selection call), shown on the latest user message. Notes are learned as in ``notes``.
A failed selection is not fatal: the agent is shown every note, and the turn records why.
"""

from __future__ import annotations

from typing import Any

from msc_graph.llm import call_json
from msc_graph.memory.designs.base import Recall, SessionInfo
from msc_graph.memory.designs.notes import Reflecting
from msc_graph.memory.notes import notes_as_text, recalled_block
from msc_graph.prompts import SELECT_NOTES_PROMPT, transcript_text
from msc_graph.schemas import NoteSelection


class LLMSelection(Reflecting):
    name = "select"
    recalls = True

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        notes = list(memory or [])
        if not notes:
            return Recall(shown=[])
        prompt = SELECT_NOTES_PROMPT.format(notes=notes_as_text(notes), conversation=transcript_text(messages))
        result = await call_json(self.settings.agent, [{"role": "user", "content": prompt}], NoteSelection)
        usage = {"agent_select": result.usage.as_dict()}
        if not result.ok:
            picked, error = notes, result.error
        else:
            picked = [notes[i - 1] for i in dict.fromkeys(result.value.relevant_notes) if 1 <= i <= len(notes)]
            error = None
        text = recalled_block(picked)
        return Recall(shown=picked, text=text, usage=usage, error=error)
