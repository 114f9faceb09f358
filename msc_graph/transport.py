"""HTTP for chat completions: one aiohttp session per endpoint and event loop, bounded retries.

The batch runner sends tens of thousands of requests from one process, so the client's CPU per
request matters (see ``bench/README.md``). Posting the JSON body with aiohttp directly costs about
a third less CPU per call than the OpenAI SDK's request machinery over an httpx transport; the
retry rules are the SDK's own, so behaviour is the same:

- retried: HTTP 408, 409, 429 and 5xx, timeouts, refused or dropped connections;
- wait: ``retry-after-ms`` / ``Retry-After`` when the server gives 0-60 s, else exponential backoff
  from 0.5 s doubling to at most 8 s, with up to 25% jitter;
- at most ``max_retries`` retries, each attempt bounded by the timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from msc_graph.counters import TRAFFIC
from msc_graph.outage import outages

RETRY_STATUSES = frozenset({408, 409, 429})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0


class EndpointError(RuntimeError):
    """A request that failed for good. ``status_code`` is None for timeouts and connection errors."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RequestTimeout(EndpointError):
    pass


class ConnectionFailed(EndpointError):
    pass


class HTTPStatusError(EndpointError):
    pass


class BadReply(ValueError):
    """An HTTP 200 whose body is not a usable chat completion (a proxy's error page, say)."""


_sessions: dict[tuple[int, str, float], aiohttp.ClientSession] = {}


def loop_id() -> int:
    """Which event loop is running (0 for none): HTTP pools and semaphores cannot cross loops."""
    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return 0


def session_for(origin: str, timeout_s: float, max_connections: int) -> aiohttp.ClientSession:
    """One pooled session per server (scheme, host and port), timeout and event loop."""
    key = (loop_id(), origin, timeout_s)
    session = _sessions.get(key)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(16, max_connections), limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s)),
            json_serialize=json.dumps,
        )
        _sessions[key] = session
    return session


async def close_sessions() -> None:
    """Close this event loop's sessions (the runner calls it when a run ends)."""
    current = loop_id()
    for key in [k for k in _sessions if k[0] == current]:
        await _sessions.pop(key).close()


def forget_other_loops() -> None:
    """Drop sessions of event loops that are gone (their sockets went with the loop)."""
    current = loop_id()
    for key in [k for k in _sessions if k[0] != current]:
        _sessions.pop(key, None)


def retry_delay(attempt: int, headers: Any = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based)."""
    if headers is not None:
        server_says = _retry_after(headers)
        if server_says is not None and 0 < server_says <= 60:
            return server_says
    delay = min(INITIAL_RETRY_DELAY * 2.0**attempt, MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def _retry_after(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else email.utils.mktime_tz(parsed) - time.time()


def is_retryable(status: int) -> bool:
    """The one rule for statuses: overload, conflicts, timeouts and server errors are retried."""
    return status in RETRY_STATUSES or status >= 500


def _gave_up(failure: EndpointError, attempt: int) -> EndpointError:
    attempts = f" (after {attempt + 1} attempt{'s' if attempt else ''})"
    return type(failure)(str(failure) + attempts, failure.status_code)


def _decoded(status_ok_raw: bytes, content_type: str) -> dict:
    try:
        return json.loads(status_ok_raw)
    except ValueError:
        raise BadReply(f"the server's answer is not JSON ({content_type}): {status_ok_raw[:120]!r}") from None


def _error_message(status: int, raw: bytes) -> str:
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        message = err.get("message", err) if isinstance(err, dict) else err
    except ValueError:
        message = raw.decode("utf-8", "replace")
    return f"HTTP {status}: {str(message)[:300]}"


async def post_json(
    url: str,
    body: dict,
    *,
    api_key: str,
    timeout_s: float,
    max_retries: int,
    max_connections: int = 256,
) -> dict:
    """POST ``body`` as JSON and return the decoded JSON answer, retrying what is worth retrying.

    A request that used its retries while the server fails every request waits for the server to
    come back instead of failing (``msc_graph.outage``).
    """
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    session = session_for(origin, timeout_s, max_connections)
    headers = {"Authorization": f"Bearer {api_key}"}
    servers = outages()
    attempt, window = 0, time.monotonic()  # ``window``: since the attempt before the last one
    while True:
        retry_headers = None
        await servers.wait_up(origin)
        TRAFFIC.requests += 1
        sent = time.monotonic()
        try:
            async with session.post(url, json=body, headers=headers) as resp:
                raw = await resp.read()
                if resp.status < 300:
                    servers.success(origin)
                    return _decoded(raw, resp.headers.get("content-type", "?"))
                failure: EndpointError = HTTPStatusError(_error_message(resp.status, raw), resp.status)
                if not is_retryable(resp.status):
                    servers.success(origin)  # it answered: the server is there
                    raise failure
                TRAFFIC.throttled += resp.status == 429
                retry_headers = resp.headers
        except TimeoutError:
            failure = RequestTimeout(f"no answer within {timeout_s:g} s")
        except aiohttp.ClientError as exc:
            failure = ConnectionFailed(f"{type(exc).__name__}: {exc}"[:300])
        if attempt >= max_retries:
            if await servers.hold_if_outage(origin, window, models_url(url), headers):
                attempt, window = 0, time.monotonic()
                continue
            raise _gave_up(failure, attempt)
        window = sent
        TRAFFIC.retries += 1
        await asyncio.sleep(retry_delay(attempt, retry_headers))
        attempt += 1


def models_url(url: str) -> str:
    """The ``/models`` route beside a request's route (a probe that the server is there)."""
    for route in ("/chat/completions", "/completions", "/embeddings"):
        if url.endswith(route):
            return url[: -len(route)] + "/models"
    return url.rsplit("/", 1)[0] + "/models"


def post_json_blocking(
    client: Any, url: str, body: dict, *, api_key: str, timeout_s: float, max_retries: int
) -> dict:
    """:func:`post_json` for callers without an event loop (worker threads, the store process),
    over an ``httpx.Client``: the same retry rule, waits and errors."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    attempt = 0
    while True:
        retry_headers = None
        try:
            resp = client.post(url, json=body, headers=headers, timeout=timeout_s)
            if resp.status_code < 300:
                return _decoded(resp.content, resp.headers.get("content-type", "?"))
            failure: EndpointError = HTTPStatusError(_error_message(resp.status_code, resp.content), resp.status_code)
            if not is_retryable(resp.status_code):
                raise failure
            retry_headers = resp.headers
        except httpx.TimeoutException:
            failure = RequestTimeout(f"no answer within {timeout_s:g} s")
        except httpx.TransportError as exc:
            failure = ConnectionFailed(f"{type(exc).__name__}: {exc}"[:300])
        if attempt >= max_retries:
            raise _gave_up(failure, attempt)
        time.sleep(retry_delay(attempt, retry_headers))
        attempt += 1
