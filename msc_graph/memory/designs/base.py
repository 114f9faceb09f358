"""The interface every memory design implements (built-ins and plug-ins alike).

A session asks its design four things (``docs/memory.md`` has a worked example):

1. ``start``: the memory the agent starts the session with (read from the store, or the memory
   given in the session's input), and ``system_block``: text added to the agent's system prompt
   for the whole session (it never changes inside a session, so prefix caches keep working);
2. ``recall`` (designs with ``recalls = True``): before every agent turn, what to show the agent
   for the latest user message, and where (on that user message, or before the opening message);
3. ``learn`` (designs with ``learns = True``): after a finished session, the memory to keep. A
   design that fails to learn keeps the memory it had and says why in ``info["error"]``;
4. ``restore``: on resume, make the store hold the memory of the user's last finished session,
   exactly as the results file recorded it (the records are the truth).

Memory is any JSON value (our designs use a list of note dicts). It is written to the records as
``notes_before`` / ``notes_after``, and each recall as ``retrieved`` on its user turn.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from msc_graph.config import RoleConfig, SessionContext
from msc_graph.memory.access import StoreLocator
from msc_graph.memory.embeddings import embedding_for

Placement = Literal["user_turn", "opening"]


@dataclass(frozen=True)
class DesignSettings:
    """What a design is built with, once per run."""

    #: The run's session settings (retrieval_k, retrieval_threshold, embedding_model, ...).
    context: SessionContext
    #: The agent's endpoint: designs make their own model calls with the agent's model.
    agent: RoleConfig
    #: Where the run keeps memory (per-user Chroma collections).
    store: StoreLocator
    #: The endpoint that writes the notes after a session (``--reflection-model``); None: the agent's.
    reflection: RoleConfig | None = None

    @property
    def reflector(self) -> RoleConfig:
        return self.reflection or self.agent


@dataclass(frozen=True)
class SessionInfo:
    """The session a design is asked about."""

    user_id: int | str
    session_index: int
    persona: str = ""
    preferences: tuple[str, ...] = ()
    #: False when the session's input gave the memory (Studio, ``user_run`` with notes): the store
    #: is then neither read nor written.
    from_store: bool = True


def given_memory_digest(memory: Any) -> str:
    """A short digest of a memory given in a session's input: the scope a design keeps it under in
    its own store, apart from the run's users."""
    return hashlib.sha1(json.dumps(memory, sort_keys=True, default=str).encode()).hexdigest()[:12]


class RecallFailed(RuntimeError):
    """A recall that could not be made: the session fails (and, under the published protocol, is
    generated again). ``infrastructure``: the server failed, not the reply."""

    def __init__(self, message: str, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


class LearnFailed(RecallFailed):
    """Learning that failed because the server did: the session is kept, marked failed, and a rerun
    runs it again (a design whose replies were unusable keeps its old memory instead)."""


@dataclass
class Recall:
    """What a design shows the agent before one turn."""

    #: What the record keeps for this turn (the notes shown, or the text).
    shown: Any = None
    #: The text added to the agent's messages ("" adds nothing).
    text: str = ""
    #: On the latest user message (stays there: later requests share the prefix), or before the
    #: session's opening message (replaced every turn, as the published design does).
    placement: Placement = "user_turn"
    #: Model usage by role name, e.g. ``{"agent_select": {"calls": 1, ...}}``.
    usage: dict[str, dict] = field(default_factory=dict)
    #: Why the recall fell back (recorded on the turn; not a session failure).
    error: str | None = None


@dataclass
class Learned:
    """The memory after a session."""

    memory: Any
    usage: dict[str, dict] = field(default_factory=dict)
    #: What the record keeps under ``reflection`` (reasoning, raw reply; ``error`` when it failed).
    info: dict | None = None


class MemoryDesign:
    """Base class of the built-in designs: no memory at all. Override what a design does."""

    name: ClassVar[str] = "none"
    #: Memory carries across sessions: a user's sessions run in order and resume restores it.
    learns: ClassVar[bool] = False
    #: ``recall`` runs before every agent turn.
    recalls: ClassVar[bool] = False
    #: Keeps its memory in the run's notes store (``settings.store``): the runner opens and locks
    #: it before the first session (a design with storage of its own manages it itself).
    uses_store: ClassVar[bool] = False
    #: Embeds text: the run's embedding model keys its results and preflight checks the embeddings.
    embeds: ClassVar[bool] = False
    #: The run settings (``SessionContext`` fields declared ``Spec(results="design")``) it reads:
    #: they key its runs' records (``memory/registry.py: design_keys``).
    reads_settings: ClassVar[tuple[str, ...]] = ()
    #: Its own parameters that change results (constants it was built with): they key its runs too.
    parameters: ClassVar[dict[str, Any]] = {}

    def __init__(self, settings: DesignSettings) -> None:
        self.settings = settings

    def embedding(self) -> Any:
        """The run's embedding function (what the store embeds notes with)."""
        ctx = self.settings.context
        return embedding_for(ctx.embedding_model, ctx.embedding_api_base)

    async def start(self, session: SessionInfo, given: Any | None) -> Any:
        """The memory at session start: ``given`` (the session's input) when there is one."""
        return given if given is not None else []

    def system_block(self, memory: Any, session: SessionInfo) -> str:
        """Text appended to the agent's system prompt for the whole session."""
        return ""

    def template_notes(self, memory: Any) -> str:
        """Under ``--protocol published``: the notes the published agent prompt embeds (only the
        published design has any; other designs add theirs with ``system_block``)."""
        return ""

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        return Recall()

    async def learn(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Learned:
        """The memory after a finished session (written to the store when ``session.from_store``)."""
        return Learned(memory)

    async def restore(self, user_id: int | str, memory: Any) -> None:
        """Make the store hold ``memory`` for the user (resume)."""

    async def preflight(self) -> None:
        """Checks before the run writes anything (skipped by ``--skip-preflight``): raise an error
        whose message is one line naming the problem and the fix (e.g. a server without tool calls)."""

    async def prepare(self, user_ids: list) -> None:
        """Called once by the runner before any session, with every user of the run."""
