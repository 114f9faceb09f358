"""Outages: an endpoint that fails every request pauses the run instead of failing its sessions.

A request that has used all its retries on an infrastructure error (connection, timeout, HTTP
5xx/429) asks :func:`hold_if_outage` before it gives up. When no request to that server has
succeeded during its last two attempts and the server does not answer a probe (``GET /models``)
either, the server is *down*: every request to it waits before its next attempt (the sessions in flight
are held, their retries are not spent), the runner starts no new session
(:func:`all_up`), and one prober asks the server again with backoff. When it answers, everything
carries on; a held request then gets a fresh set of retries. A server down for longer than the
outage timeout stops the run (:class:`OutageStop`, which no session turns into a failure): finished
sessions are saved and a rerun continues.

A request that keeps failing while the server answers probes (or while other requests succeed)
fails as before: that is the request, not the server.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

import aiohttp

from msc_graph.config import RunSettings

#: Seconds between probes of a server that is down: doubling from the first to the last.
PROBE_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
#: The default of ``--outage-timeout`` (defined in ``config.py``).
DEFAULT_OUTAGE_TIMEOUT_S: float = RunSettings.model_fields["outage_timeout"].default


class OutageStop(BaseException):
    """A server stayed down past the outage timeout: the run stops (a rerun continues).

    A ``BaseException``, like a cancellation, so that no session records it as its failure.
    """


@dataclass
class _Server:
    origin: str
    last_success: float = 0.0
    down_since: float | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    prober: asyncio.Task | None = None
    stopped: str | None = None

    def __post_init__(self) -> None:
        self.up.set()


class Outages:
    """The servers one event loop talks to, and whether each is up."""

    def __init__(self, timeout_s: float = DEFAULT_OUTAGE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        #: Off until the run's sessions start: before that (preflight), a server that fails fails at once.
        self.holding = False
        self.servers: dict[str, _Server] = {}
        self._any_up = asyncio.Event()
        self._any_up.set()

    def server(self, origin: str) -> _Server:
        srv = self.servers.get(origin)
        if srv is None:
            srv = self.servers[origin] = _Server(origin)
        return srv

    def success(self, origin: str) -> None:
        self.server(origin).last_success = time.monotonic()

    async def wait_up(self, origin: str) -> None:
        srv = self.servers.get(origin)
        if srv is None or srv.up.is_set():
            return
        await srv.up.wait()
        if srv.stopped:
            raise OutageStop(srv.stopped)

    async def all_up(self) -> None:
        """Wait while any server is down (the runner starts no session meanwhile)."""
        while not self._any_up.is_set():
            await self._any_up.wait()
        stopped = next((s.stopped for s in self.servers.values() if s.stopped), None)
        if stopped:
            raise OutageStop(stopped)

    async def hold_if_outage(self, origin: str, since: float, probe_url: str, headers: dict) -> bool:
        """True when the server was down and is up again (retry with fresh retries); False when the
        request should fail. Raises :class:`OutageStop` past the outage timeout."""
        srv = self.server(origin)
        if srv.stopped:
            raise OutageStop(srv.stopped)
        if not self.holding:
            return False
        if srv.up.is_set():
            if srv.last_success > since or await _answers(probe_url, headers):
                return False
            self._mark_down(srv, probe_url, headers)
        await srv.up.wait()
        if srv.stopped:
            raise OutageStop(srv.stopped)
        return True

    def _mark_down(self, srv: _Server, probe_url: str, headers: dict) -> None:
        srv.down_since = time.monotonic()
        srv.up.clear()
        self._any_up.clear()
        self._say(f"{srv.origin} fails every request: holding the sessions in flight and probing it "
                  f"(the run stops after {self.timeout_s:g} s of this)")  # fmt: skip
        srv.prober = asyncio.ensure_future(self._probe(srv, probe_url, headers))

    async def _probe(self, srv: _Server, probe_url: str, headers: dict) -> None:
        attempt = 0
        assert srv.down_since is not None
        while True:
            delay = PROBE_DELAYS[min(attempt, len(PROBE_DELAYS) - 1)]
            waited = time.monotonic() - srv.down_since
            if waited + delay > self.timeout_s:
                await asyncio.sleep(max(0.0, self.timeout_s - waited))
                if await _answers(probe_url, headers):
                    break
                srv.stopped = (
                    f"{srv.origin} failed every request for {self.timeout_s:g} s (--outage-timeout); the run stopped. "
                    "Finished sessions are saved: rerun the same command to continue"
                )
                self._say(srv.stopped)
                srv.up.set()
                self._any_up.set()
                return
            await asyncio.sleep(delay)
            attempt += 1
            if await _answers(probe_url, headers):
                break
        down = time.monotonic() - srv.down_since
        self._say(f"{srv.origin} answers again after {down:.0f} s: carrying on")
        srv.down_since = None
        srv.last_success = time.monotonic()
        srv.up.set()
        if all(s.up.is_set() for s in self.servers.values()):
            self._any_up.set()

    def _say(self, text: str) -> None:
        print(f"outage: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        for srv in self.servers.values():
            if srv.prober is not None and not srv.prober.done():
                srv.prober.cancel()


async def _answers(probe_url: str, headers: dict) -> bool:
    """Whether the server answers ``GET .../models`` (any status below 500 but 429 means it is there)."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(probe_url, headers=headers) as resp:
                return resp.status < 500 and resp.status != 429
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


_BY_LOOP: dict[int, Outages] = {}


def outages() -> Outages:
    """The outage state of the running event loop."""
    from msc_graph.transport import loop_id

    key = loop_id()
    state = _BY_LOOP.get(key)
    if state is None:
        state = _BY_LOOP[key] = Outages()
    return state


def reset(timeout_s: float = DEFAULT_OUTAGE_TIMEOUT_S) -> Outages:
    """A fresh outage state for the running loop (a run starts with every server up)."""
    from msc_graph.transport import loop_id

    _BY_LOOP.clear()
    state = _BY_LOOP[loop_id()] = Outages(timeout_s)
    return state
