"""Notes as plain dicts (what state and records hold) and their text form for prompts."""

from __future__ import annotations

from msc_graph.prompts import RETRIEVED_NOTES_BLOCK
from msc_graph.schemas import Note


def note_text(note: dict) -> str:
    return Note.model_validate(note).as_text()


def notes_as_text(notes: list[dict]) -> str:
    if not notes:
        return "(no notes yet)"
    return "\n".join(f"{i}. {note_text(n)}" for i, n in enumerate(notes, start=1))


def recalled_block(notes: list[dict]) -> str:
    """What a design puts on a user message for the agent: the notes in the recalled-notes block,
    or nothing when there are none."""
    return RETRIEVED_NOTES_BLOCK.format(notes=notes_as_text(notes)) if notes else ""
