"""Notes as plain dicts (what state and records hold) and their text form for prompts."""

from __future__ import annotations

from msc_graph.schemas import Note


def note_text(note: dict) -> str:
    return Note.model_validate(note).as_text()


def notes_as_text(notes: list[dict]) -> str:
    if not notes:
        return "(no notes yet)"
    return "\n".join(f"{i}. {note_text(n)}" for i, n in enumerate(notes, start=1))
