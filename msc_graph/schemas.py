"""Pydantic models of what each JSON-returning model call must return.

No ``maxLength``/``maxItems`` bounds: llama.cpp expands them into grammars too large to compile.
Runaway replies are bounded by ``max_tokens`` instead (a truncated reply fails validation and is retried).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator

_SURROGATES = re.compile("[\ud800-\udfff]")


def encodable(text: Any) -> Any:
    """``text`` with what UTF-8 cannot hold (lone surrogates, which broken tokenizers emit) replaced
    by U+FFFD, so that servers, stores and files can encode it; other values as they are."""
    return _SURROGATES.sub("\ufffd", text) if isinstance(text, str) else text


def coerce_bool(v: Any) -> Any:
    """Models write booleans as strings now and then ("True", "yes"); accept those."""
    if isinstance(v, str):
        low = v.strip().lower()
        if low in {"true", "yes", "y", "1"}:
            return True
        if low in {"false", "no", "n", "0", ""}:
            return False
    return v


class UserTurnBase(BaseModel):
    """The user simulator's reply; :func:`user_turn_model` adds the fields, checks first."""

    _coerce = field_validator("enforce_preferences", "should_terminate", mode="before", check_fields=False)(
        coerce_bool
    )


@lru_cache(maxsize=16)
def user_turn_model(n_preferences: int) -> type[UserTurnBase]:
    """The user reply schema: one ``preference_<i>_satisfied`` per preference, then the decision fields.

    Key order matters to a model writing left to right: it checks each preference before deciding.
    """
    fields: dict[str, Any] = {
        f"preference_{i}_satisfied": (str, Field(description=f"Does the last agent reply satisfy preference {i}? Why?"))
        for i in range(1, n_preferences + 1)
    }
    fields.update(
        enforce_preferences=(bool, Field(description="True if this reply must enforce a preference.")),
        reasoning=(str, Field(description="Two or three sentences of reasoning.")),
        draft_answer=(str, Field(description="The current draft answer to the problem.")),
        should_terminate=(bool, Field(description="True to end the conversation now.")),
        response=(str, Field(description="The message sent to the agent.")),
    )
    return create_model(f"UserTurn{n_preferences}", __base__=UserTurnBase, **fields)


class AgentReply(BaseModel):
    """The agent's reply in JSON mode."""

    reasoning: str = Field(description="Brief reasoning about what the user needs.")
    response: str = Field(description="The message shown to the user.")


class JudgeVerdict(BaseModel):
    """The judge's grade of a draft answer."""

    reasoning: str = Field(description="Why the draft answer is or is not correct.")
    # an enum, not an integer with bounds: grammar-constrained servers (llama.cpp's among them, which
    # ignores ``minimum``/``maximum``) then cannot emit any other number
    accuracy: Literal[0, 1] = Field(description="1 if the draft answer is correct, else 0.")

    @field_validator("accuracy", mode="before")
    @classmethod
    def _to_int(cls, v: Any) -> Any:
        v = coerce_bool(v)
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, float) and v in (0.0, 1.0):
            return int(v)
        if isinstance(v, str) and v.strip() in {"0", "1"}:
            return int(v.strip())
        return v


class Note(BaseModel):
    """One thing the agent has learned about a user."""

    preference: str = Field(description="What the user wants, in one sentence.")
    evidence: str = Field(
        default="", description="When and how the user asked for it (session, words)."
    )
    how_to_satisfy: str = Field(default="", description="What to do in replies.")

    _encodable = field_validator("preference", "evidence", "how_to_satisfy", mode="before")(encodable)

    def as_text(self) -> str:
        parts = [self.preference.strip()]
        if self.how_to_satisfy.strip():
            parts.append(f"How: {self.how_to_satisfy.strip()}")
        if self.evidence.strip():
            parts.append(f"Evidence: {self.evidence.strip()}")
        return " | ".join(parts)


class ReflectionResult(BaseModel):
    """The agent's updated notes after a session."""

    reasoning: str = Field(description="What the user enforced in this session.")
    notes: list[Note] = Field(description="The complete updated list of notes.")


class CoverageGrade(BaseModel):
    """Which of a user's preferences a set of notes captures (the training judge's reply)."""

    reasoning: str = Field(default="")
    covered: list[int] = Field(description="Numbers of the preferences the notes capture.")


class NoteSelection(BaseModel):
    """The notes an LLM judged relevant to the next reply (``select`` memory mode)."""

    reasoning: str = Field()
    relevant_notes: list[int] = Field(description="Numbers of the relevant notes.")
