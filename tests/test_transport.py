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
