"""``retrieval`` (the default memory): before each agent turn, the notes most relevant to the
latest user message (top-k by cosine similarity, at least a threshold), shown on that message.

Notes are learned by reflection as in ``notes``. The user's notes and their vectors are held in
the process after the first read, so a turn costs one query embedding and a dot product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msc_graph.memory.access import astore_for
from msc_graph.memory.designs.base import Recall, SessionInfo
from msc_graph.memory.designs.notes import Reflecting
from msc_graph.memory.notes import notes_as_text
from msc_graph.memory.store import embed_text, rank_notes
from msc_graph.prompts import RETRIEVED_NOTES_BLOCK


def latest_user_message(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


class Retrieval(Reflecting):
    name = "retrieval"
    recalls = True

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        ctx = self.settings.context
        query = latest_user_message(messages)
        if not session.from_store:
            notes, vectors = list(memory or []), None
        else:
            store = await astore_for(self.settings.store)
            notes, vectors = await store.anotes(session.user_id, with_vectors=True)
        if not notes:
            return Recall(shown=[])
        emb = self.embedding()
        if vectors is None:  # notes given in the session's input: embed them the same way
            vectors = np.asarray(await emb.aembed_passages([embed_text(n) for n in notes]), dtype=np.float32)
        query_vector = (await emb.aembed_query([query]))[0]
        scored = rank_notes(notes, vectors, query_vector, ctx.retrieval_k, ctx.retrieval_threshold)
        hits = [{**s.note, "score": s.score} for s in scored]
        text = RETRIEVED_NOTES_BLOCK.format(notes=notes_as_text(hits)) if hits else ""
        return Recall(shown=hits, text=text)
