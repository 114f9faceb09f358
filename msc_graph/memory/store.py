"""Per-user preference memory over Chroma.

One collection per user (``msc-<namespace>-user-<id>``, sanitised); a note is one document whose
metadata holds the user, the session that wrote it, its kind, its position and a version.
``replace`` is one ``upsert`` of the new notes at ids fixed by position (``u<id>-n<position>``),
each carrying the new version number; readers only ever see the documents of the newest version,
so a crash leaves either the old notes or the new ones, never a mix. When the notes get fewer, the
older leftovers are then deleted (a crash before that leaves leftovers that readers ignore). One
Chroma write per change, not an add and a delete: each costs several milliseconds of CPU.

Embedded ``PersistentClient`` by default; ``HttpClient`` to a ``chroma run`` server when several
processes or machines share memory. One embedded folder is never opened by two processes: a lock
file refuses the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import chromadb
import numpy as np
from chromadb.config import Settings

from msc_graph.memory.embeddings import make_embedding
from msc_graph.memory.lock import MemoryError_, lock_directory
from msc_graph.schemas import Note


def collection_name(namespace: str, user_id: int | str) -> str:
    """A valid Chroma collection name: 3-512 chars of ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    raw = f"msc-{namespace}-user-{user_id}"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")
    if len(name) > 500:
        name = name[:480] + "-" + hashlib.sha1(raw.encode()).hexdigest()[:12]
    return name


@dataclass
class ScoredNote:
    note: dict
    score: float
    #: The note's position among the user's notes (their stored order).
    position: int = -1


#: Most HNSW indexes (one per user collection) embedded Chroma keeps in memory; the rest are read
#: from disk when needed. Chroma sizes this cache as (open-file limit / 5), which here means
#: thousands of indexes at about 2.6 MB each: 1,000 users held 2.6 GB. 128 keeps it near 350 MB
#: without a measurable slow-down (the runner keeps each user's current notes in process anyway).
HNSW_CACHE_INDEXES = int(os.environ.get("MSC_CHROMA_HNSW_CACHE", "128"))


@contextlib.contextmanager
def _bounded_hnsw_cache(indexes: int):
    """Make embedded Chroma size its HNSW cache for ``indexes`` indexes.

    Chroma's Rust bindings take the cache size from ``resource.getrlimit(RLIMIT_NOFILE) // 5`` when
    the client is built; this shows that module a smaller soft limit while it is built (the real
    limit of the process is untouched). Versions without that code path are left as they are.
    """
    try:
        from chromadb.api import rust
    except ImportError:  # pragma: no cover - another Chroma build
        yield
        return
    real = getattr(rust, "resource", None)
    if real is None or indexes <= 0:
        yield
        return

    class _Limits:
        RLIMIT_NOFILE = real.RLIMIT_NOFILE

        @staticmethod
        def getrlimit(which):
            soft, hard = real.getrlimit(which)
            return (min(soft, indexes * 5), hard) if which == real.RLIMIT_NOFILE else (soft, hard)

    rust.resource = _Limits
    try:
        yield
    finally:
        rust.resource = real


def make_client(path: str | Path | None = None, url: str | None = None) -> Any:
    settings = Settings(anonymized_telemetry=False, allow_reset=False)
    if url:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname or "localhost",
                port=parsed.port or 8000,
                ssl=parsed.scheme == "https",
                settings=settings,
            )
            client.heartbeat()
        except Exception as exc:  # noqa: BLE001
            raise MemoryError_(
                f"cannot reach the Chroma server at {url} ({type(exc).__name__}); start it with "
                "`chroma run --path DIR --port PORT` or drop --chroma-url to use embedded memory"
            ) from None
        return client
    if path is None:
        raise MemoryError_("memory needs a folder (--memory-dir) or a Chroma server (--chroma-url)")
    path = Path(path)
    lock_directory(path)
    with _bounded_hnsw_cache(HNSW_CACHE_INDEXES):
        return chromadb.PersistentClient(path=str(path), settings=settings)


class HeldNotes:
    """Reading a user's notes without blocking the event loop, for a store that keeps users' current
    notes in the process once read (``cached``) and reads them blocking otherwise (``list``,
    ``notes_with_vectors``)."""

    async def anotes(self, user_id: int | str, with_vectors: bool) -> tuple[list[dict], np.ndarray | None]:
        """The user's notes (and their vectors): from this process when it holds them, as it does
        on most agent turns (no thread hop), else read in a worker thread."""
        held = self.cached(user_id, with_vectors)  # type: ignore[attr-defined]
        if held is not None:
            return held
        if with_vectors:
            return await asyncio.to_thread(self.notes_with_vectors, user_id)  # type: ignore[attr-defined]
        return await asyncio.to_thread(self.list, user_id), None  # type: ignore[attr-defined]


class PreferenceMemory(HeldNotes):
    """Notes per user in Chroma. All methods block: call them through ``asyncio.to_thread``.

    Chroma is the store of record. Each user's current notes and their vectors are also kept in
    this process once read or written, so a search (a handful of notes per user) is a dot product
    instead of two store round trips, and a note's vector is computed once, not on every write.
    This assumes a user's notes are written by one process at a time, as the runner guarantees
    (sharded runs split users between processes).
    """

    def __init__(self, client: Any, namespace: str = "default", embedding: Any = None) -> None:
        self.client = client
        self.namespace = namespace
        self.embedding = embedding or make_embedding()
        self._collections: dict[str, Any] = {}
        self._current: dict[str, tuple[int, list[dict], np.ndarray | None]] = {}
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._guard = threading.RLock()

    def _collection(self, user_id: int | str) -> Any:
        name = collection_name(self.namespace, user_id)
        with self._guard:
            coll = self._collections.get(name)
            if coll is None:
                coll = self.client.get_or_create_collection(
                    name,
                    embedding_function=self.embedding,
                    metadata={"user": str(user_id), "namespace": self.namespace},
                    configuration={"hnsw": {"space": "cosine"}},
                )
                self._collections[name] = coll
        return coll

    def _passage_vectors(self, texts: list[str]) -> np.ndarray:
        """Vectors of note texts, each computed once per process (a bounded cache)."""
        with self._guard:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            fresh = np.asarray(self.embedding(missing), dtype=np.float32)
            with self._guard:
                for text, vec in zip(missing, fresh, strict=True):
                    self._vectors[text] = vec
                while len(self._vectors) > 20_000:
                    self._vectors.popitem(last=False)
        with self._guard:
            return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    # -- reads ---------------------------------------------------------------------------

    def _latest(self, user_id: int | str) -> tuple[int, list[dict]]:
        got = self._collection(user_id).get(include=["metadatas"])
        metas = [m for m in got["metadatas"] or [] if m and m.get("user") == str(user_id)]
        if not metas:
            return -1, []
        version = max(int(m["version"]) for m in metas)
        current = sorted((m for m in metas if int(m["version"]) == version), key=lambda m: int(m["position"]))
        return version, current

    def _state(self, user_id: int | str) -> tuple[int, list[dict], np.ndarray | None]:
        key = str(user_id)
        with self._guard:
            cached = self._current.get(key)
        if cached is None:
            version, metas = self._latest(user_id)
            cached = (version, [_note_of(m) for m in metas if m.get("kind") != "empty"], None)
            with self._guard:
                self._current[key] = cached
        return cached

    def warm(self, user_ids: list) -> dict[str, list[dict]]:
        """Read many users' current notes at once: one listing of the collections, then a read only
        for users that have one (a new run's users cost nothing). Returns ``{user_id: notes}``."""
        if user_ids:
            existing = {c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()}
            with self._guard:
                for uid in user_ids:
                    if str(uid) not in self._current and collection_name(self.namespace, uid) not in existing:
                        self._current[str(uid)] = (-1, [], None)
        return {str(uid): self.list(uid) for uid in user_ids}

    def list(self, user_id: int | str) -> list[dict]:
        """The user's current notes, in order."""
        return [dict(n) for n in self._state(user_id)[1]]

    def notes_with_vectors(self, user_id: int | str) -> tuple[list[dict], np.ndarray | None]:
        """The current notes and their vectors (computed once), for ranking against a query."""
        version, notes, vectors = self._state(user_id)
        if notes and vectors is None:
            vectors = self._passage_vectors([embed_text(n) for n in notes])
            with self._guard:
                if self._current.get(str(user_id), (None,))[0] == version:
                    self._current[str(user_id)] = (version, notes, vectors)
        return notes, vectors

    def cached(self, user_id: int | str, with_vectors: bool = True) -> tuple[list[dict], np.ndarray | None] | None:
        """The user's current notes (and their vectors) if this process already holds them, else None.

        Never blocks (no store call, no lock a store call may hold), so the event loop can use it
        directly and skip a worker-thread hop on every agent turn.
        """
        state = self._current.get(str(user_id))  # a dict read is atomic under the GIL
        if state is None or (with_vectors and state[1] and state[2] is None):
            return None
        return state[1], state[2]

    # -- writes --------------------------------------------------------------------------

    def replace(self, user_id: int | str, notes: list[dict], session_index: int = -1, vectors: Any = None) -> int:
        """Make ``notes`` the user's notes. Returns their version number.

        Notes equal to the current ones are not written again (reflection often keeps them as they
        are): nothing changes for a reader, and a Chroma write costs about 10 ms of CPU. ``vectors``
        (one per note, from this store's embedding) spare computing them here.
        """
        clean = [Note.model_validate(n).model_dump() for n in notes]
        version, current, _ = self._state(user_id)  # read once, then kept by this process
        if clean == current:  # (also an empty store asked to hold no notes)
            return version
        coll = self._collection(user_id)
        if vectors is not None and len(vectors) == len(clean):
            with self._guard:
                for note, vec in zip(clean, vectors, strict=True):
                    self._vectors[embed_text(note)] = np.asarray(vec, dtype=np.float32)
        new_version = version + 1
        base = {"user": str(user_id), "session": int(session_index), "version": new_version}
        if clean:
            texts = [embed_text(n) for n in clean]
            vectors = self._passage_vectors(texts)
            metadatas = [{**base, "kind": "preference", "position": i, **n} for i, n in enumerate(clean)]
        else:  # an explicit empty version, so "no notes" also supersedes older notes
            texts, vectors = ["(no notes)"], None
            metadatas = [{**base, "kind": "empty", "position": 0}]
        coll.upsert(
            ids=[f"u{user_id}-n{i}" for i in range(len(texts))],
            documents=texts,
            embeddings=self._passage_vectors(texts) if vectors is None else vectors,
            metadatas=metadatas,
        )
        if len(current) > len(clean):  # leftovers of a longer older version
            coll.delete(where={"version": {"$lt": new_version}})
        with self._guard:
            self._current[str(user_id)] = (new_version, clean, vectors)
        return new_version

    def replace_with_vectors(self, user_id: int | str, notes: list[dict], session_index: int = -1) -> tuple[int, Any]:
        """``replace``, and the vectors of the notes it made current (None for no notes)."""
        version = self.replace(user_id, notes, session_index)
        return version, self.notes_with_vectors(user_id)[1]

    # -- the async interface the memory designs use (``ProcessMemory`` has the same) ---------

    async def areplace(self, user_id: int | str, notes: list[dict], session_index: int = -1) -> None:
        """``replace`` in a worker thread (the store process writes behind instead)."""
        await asyncio.to_thread(self.replace, user_id, notes, session_index)

    async def arestore(self, user_id: int | str, notes: list[dict]) -> None:
        """Make ``notes`` (from a results file) the user's notes, in a worker thread."""
        await asyncio.to_thread(self.replace, user_id, notes, -1)


def rank_notes(notes: list[dict], vectors: np.ndarray, query_vector, k: int, threshold: float) -> list[ScoredNote]:
    """The ``k`` notes whose vectors are most cosine-similar to the query, at least ``threshold``."""
    q = np.asarray(query_vector, dtype=np.float32)
    scores = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-12)
    order = np.argsort(-scores, kind="stable")[:k]
    return [ScoredNote(dict(notes[i]), round(float(scores[i]), 4), int(i)) for i in order if scores[i] >= threshold]


def embed_text(note: dict) -> str:
    """The text of a note that is embedded: what the user wants and how to satisfy it."""
    return f"{note['preference']} {note.get('how_to_satisfy', '')}".strip()


def _note_of(meta: dict) -> dict:
    return {
        "preference": meta.get("preference", ""),
        "evidence": meta.get("evidence", ""),
        "how_to_satisfy": meta.get("how_to_satisfy", ""),
    }
