"""The HTTP clients behind model calls: one ``ChatOpenAI`` per role config and event loop, with
its connection pool, and one in-flight cap per endpoint.

``ChatOpenAICompatible`` posts plain chat completions through ``msc_graph.transport`` (aiohttp, the
transport's retry policy) instead of ``chat.completions.create``; streaming, the Responses API and
extra headers keep ``ChatOpenAI``'s own path.
"""

from __future__ import annotations

import asyncio

import httpx
from httpx_aiohttp import HttpxAiohttpClient
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from msc_graph.cache import active_cache
from msc_graph.config import RoleConfig
from msc_graph.transport import BadReply, close_sessions, forget_other_loops, loop_id, post_json

#: Set in a reply's ``response_metadata`` when the server sent ``content: null`` (LangChain makes it "").
NULL_CONTENT = "null_content"


class ChatOpenAICompatible(ChatOpenAI):
    """``ChatOpenAI`` with a lean path for plain chat completions against OpenAI-compatible servers.

    The request payload and the result are built by ``ChatOpenAI`` itself; only the HTTP call
    differs: the payload is posted as it is by :mod:`msc_graph.transport` (aiohttp, the OpenAI
    SDK's retry rules) instead of through ``chat.completions.create``, which re-validates every
    request field in Python and builds httpx requests. That cuts the client's CPU per call by more
    than half at hundreds of requests in flight (``bench/README.md``). Streaming, the Responses API
    and extra headers take ``ChatOpenAI``'s own path. With a response cache (``msc_graph.cache``,
    ``--cache``) a request answered before is answered from it and never sent.
    """

    max_connections: int = 256

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[override]
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        if (
            payload.get("stream")
            or "response_format" in payload
            or self._use_responses_api(payload)
            or any(k in payload for k in ("extra_headers", "extra_query"))
        ):
            return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        payload.pop("stream", None)
        body = {**payload, **(payload.pop("extra_body", None) or {})}
        key = self.openai_api_key
        key = key.get_secret_value() if isinstance(key, SecretStr) else str(key or "EMPTY")
        url = f"{self.openai_api_base}/chat/completions"
        cache = active_cache()
        cache_key = cache.key_for(url, body) if cache is not None else None
        data = cache.get(cache_key) if cache is not None and cache_key else None
        fresh = data is None
        if data is None:
            data = await post_json(
                url,
                body,
                api_key=key,
                timeout_s=float(self.request_timeout or 600.0),  # type: ignore[arg-type]
                max_retries=self.max_retries or 0,
                max_connections=self.max_connections,
            )
        try:
            result = self._create_chat_result(data, {})
            if data["choices"][0]["message"].get("content") is None:  # LangChain reads null as ""
                result.generations[0].message.response_metadata[NULL_CONTENT] = True
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise BadReply(f"the server's answer is not a chat completion: {str(data)[:120]!r}") from exc
        if fresh and cache is not None and cache_key:
            cache.put(cache_key, data)  # only a reply that was read as a completion is kept
        return result


_clients: dict[tuple[int, RoleConfig], ChatOpenAI] = {}
_http: dict[tuple[int, str, float], httpx.AsyncClient] = {}
_semaphores: dict[tuple[int, str], asyncio.Semaphore] = {}


def chat_model(cfg: RoleConfig) -> ChatOpenAI:
    """A ``ChatOpenAI`` for ``cfg``, cached per event loop (HTTP pools cannot cross loops)."""
    loop = loop_id()
    key = (loop, cfg)
    model = _clients.get(key)
    if model is None:
        http_key = (loop, cfg.base_url, cfg.timeout_s)
        http = _http.get(http_key)
        if http is None:
            # aiohttp under httpx's interface: httpcore's pool costs O(connections) of CPU per
            # request, which dominated the client's time at a few hundred requests in flight.
            http = HttpxAiohttpClient(
                timeout=httpx.Timeout(cfg.timeout_s, connect=min(10.0, cfg.timeout_s)),
                limits=httpx.Limits(max_connections=max(cfg.max_inflight, 16), max_keepalive_connections=cfg.max_inflight),
            )
            _http[http_key] = http
        model = ChatOpenAICompatible(
            model=cfg.model,
            base_url=cfg.base_url,
            api_key=cfg.key_value(),
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
            http_async_client=http,
            stream_usage=False,
            extra_body=base_extra_body(cfg),
            max_connections=max(cfg.max_inflight, 16),
            # Listeners that stream (LangGraph's stream_mode="messages", Studio) get each reply
            # whole, through the same request path, instead of a switch to server-sent events.
            disable_streaming=True,
        )
        _clients[key] = model
    return model


def base_extra_body(cfg: RoleConfig) -> dict | None:
    """Body fields sent as they are.

    langchain-openai sends only ``max_completion_tokens``; llama.cpp and older servers read only
    ``max_tokens``. Self-hosted servers get both (same value); OpenAI's own API gets one.
    """
    return None if "api.openai.com" in cfg.base_url else {"max_tokens": cfg.max_tokens}


def endpoint_semaphore(cfg: RoleConfig) -> asyncio.Semaphore:
    key = (loop_id(), cfg.base_url)
    sem = _semaphores.get(key)
    if sem is None:
        sem = asyncio.Semaphore(cfg.max_inflight)
        _semaphores[key] = sem
    return sem


def forget_loop_clients() -> None:
    """Drop cached clients of event loops that are gone (tests run many loops)."""
    current = loop_id()
    for cache in (_clients, _http, _semaphores):
        for key in [k for k in cache if k[0] != current]:
            cache.pop(key, None)
    forget_other_loops()


async def close_loop_clients() -> None:
    """Close the HTTP connections this event loop opened (end of a run)."""
    await close_sessions()
    current = loop_id()
    for key in [k for k in _http if k[0] == current]:
        await _http.pop(key).aclose()
    for key in [k for k in _clients if k[0] == current]:
        _clients.pop(key, None)
