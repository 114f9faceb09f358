"""The chat-completions transport: which failures are retried, how long it waits, when it gives up."""

from __future__ import annotations

import time

import pytest

from msc_graph.testing.fault_server import FaultServer
from msc_graph.testing.scripted_server import serve
from msc_graph.transport import (
    MAX_RETRY_DELAY,
    BadReply,
    ConnectionFailed,
    HTTPStatusError,
    RequestTimeout,
    close_sessions,
    post_json,
    retry_delay,
)

BODY = {"model": "scripted", "messages": [{"role": "user", "content": "Hello"}]}


def test_retry_delay_follows_the_server_then_backs_off_with_jitter():
    assert retry_delay(0, {"retry-after-ms": "250"}) == 0.25
    assert retry_delay(3, {"retry-after": "2"}) == 2.0
    for attempt in range(12):
        d = retry_delay(attempt, {"retry-after": "600"})  # more than 60 s: ignored
        expected = min(0.5 * 2**attempt, MAX_RETRY_DELAY)
        assert 0.75 * expected <= d <= expected


async def _with_server(rates: dict, fn, **kwargs):
    server = FaultServer(rates, **kwargs)
    srv = await serve(server)
    url = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/chat/completions"
    try:
        return server, await fn(url)
    finally:
        await close_sessions()
        srv.close()


@pytest.mark.parametrize("kind", ["500", "503", "429", "drop", "hang"])
async def test_transient_failures_are_retried_then_reported_with_the_attempt_count(kind):
    async def call(url):
        with pytest.raises((HTTPStatusError, ConnectionFailed, RequestTimeout)) as info:
            await post_json(url, BODY, api_key="k", timeout_s=0.5, max_retries=2)
        return info.value

    server, error = await _with_server({kind: 1.0}, call, hang_s=3, retry_after_s=0.05)
    assert server.completions == 3  # one try and two retries
    assert "(after 3 attempts)" in str(error)
    if kind in ("500", "503", "429"):
        assert error.status_code == int(kind)


async def test_client_errors_are_not_retried():
    async def call(url):
        with pytest.raises(HTTPStatusError) as info:
            await post_json(url.replace("/chat/", "/nothing/"), BODY, api_key="k", timeout_s=2, max_retries=4)
        return info.value

    server, error = await _with_server({}, call)
    assert error.status_code == 404 and "after" not in str(error)


async def test_a_non_json_body_is_a_bad_reply_and_a_good_one_comes_back_decoded():
    async def call(url):
        with pytest.raises(BadReply, match="not JSON"):
            await post_json(url, BODY, api_key="k", timeout_s=2, max_retries=0)
        return None

    await _with_server({"bad_body": 1.0}, call)

    async def good(url):
        return await post_json(url, BODY, api_key="k", timeout_s=2, max_retries=0)

    _, data = await _with_server({}, good)
    assert data["choices"][0]["message"]["content"] and data["usage"]["prompt_tokens"] > 0


async def test_a_retry_after_header_is_honoured():
    async def call(url):
        start = time.monotonic()
        with pytest.raises(HTTPStatusError):
            await post_json(url, BODY, api_key="k", timeout_s=2, max_retries=1)
        return time.monotonic() - start

    _, waited = await _with_server({"429": 1.0}, call, retry_after_s=0.6)
    assert waited >= 0.6  # the server's 600 ms, not the 0.5 s default backoff


async def test_model_calls_stay_visible_to_listeners(scripted_server, monkeypatch):
    """Batch runs skip LangChain's callback set-up; streaming consumers (Studio) still see every call."""
    from langsmith import utils as ls_utils

    from msc_graph.graphs.context import SessionContext
    from msc_graph.graphs.session import graph
    from msc_graph.llm import _observed

    assert _observed() is False
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    ls_utils.get_env_var.cache_clear()  # langsmith caches what it read from the environment
    assert _observed()
    monkeypatch.delenv("LANGSMITH_TRACING")
    ls_utils.get_env_var.cache_clear()
    assert _observed() is False
    roles = ("user", "agent", "judge")
    ctx = SessionContext(**{f"{r}_base_url": scripted_server.url for r in roles}, **{f"{r}_model": "scripted" for r in roles})
    inputs = {"user_id": 0, "session_index": 0, "problem": "2+2?", "solution": "4", "preferences": ["Use bullet points."]}
    seen: dict[str, int] = {}
    async for message, meta in graph.astream(inputs, context=ctx, stream_mode="messages"):
        assert message.content  # each reply whole, not token chunks
        seen[meta["langgraph_node"]] = seen.get(meta["langgraph_node"], 0) + 1
    assert seen.get("simulate_user") and seen.get("respond") and seen.get("judge"), seen


class _EmbeddingsEndpoint:
    """A real HTTP server on loopback whose /v1/embeddings answers with the statuses given, in turn."""

    def __init__(self, statuses: list[int]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.statuses, self.requests = list(statuses), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                status = outer.statuses.pop(0) if outer.statuses else 200
                body = {"data": [{"index": 0, "embedding": [1.0, 0.0]}]} if status == 200 else {"error": {"message": "no"}}
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status == 429:
                    self.send_header("Retry-After", "0.1")
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()


def test_blocking_embedding_calls_retry_overload_with_backoff_and_stop_at_other_errors():
    from msc_graph.memory.embeddings import OpenAICompatibleEmbedding

    busy = _EmbeddingsEndpoint([503, 429])
    try:
        t0 = time.monotonic()
        vectors = OpenAICompatibleEmbedding("e", busy.url)(["a note"])
        assert busy.requests == 3 and list(vectors[0]) == [1.0, 0.0]
        assert time.monotonic() - t0 >= 0.3  # waited: ~0.4-0.5 s after the 503, 0.1 s as the 429 asked
    finally:
        busy.close()
    refused = _EmbeddingsEndpoint([401, 200])
    try:
        with pytest.raises(RuntimeError, match="HTTP 401"):
            OpenAICompatibleEmbedding("e", refused.url)(["a note"])
        assert refused.requests == 1  # not retried
    finally:
        refused.close()
