"""``--backend mock``: the scripted server (:mod:`msc_graph.testing.scripted_server`) inside the
running process, on a loopback port, so a first run takes seconds and needs no model.

The server runs its own event loop in a daemon thread; the run talks to it over real HTTP, exactly
as to any OpenAI-compatible server, so every stage (retries, parsing, memory, records, the report)
runs for real. Its replies are scripted: the numbers of a mock run mean nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from msc_graph.testing.scripted_server import ScriptedServer, serve

MOCK_MODEL = "scripted"
#: Where a mock run writes unless told otherwise (never the default output of a real run).
MOCK_OUTPUT = "outputs/mock.jsonl"
#: What a mock run says before and after it runs.
MOCK_NOTICE = (
    "mock backend: scripted replies from an in-process test server; the numbers of this run mean nothing "
    "(it checks that everything runs; --backend local or --api-base URL for a real model)"
)


@dataclass
class MockServer:
    base_url: str
    model: str
    server: ScriptedServer

    @property
    def requests(self) -> int:
        """Chat completions the server has answered."""
        return self.server.requests


@contextlib.contextmanager
def mock_server(model: str = MOCK_MODEL) -> Iterator[MockServer]:
    """Start the scripted server on 127.0.0.1 in a thread of this process; stop it when the block ends."""
    scripted = ScriptedServer(model)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    async def start() -> None:
        holder["server"] = await serve(scripted, "127.0.0.1", 0)
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="msc-mock-backend", daemon=True)
    thread.start()
    if not started.wait(30):
        raise RuntimeError("the mock backend did not start")
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield MockServer(f"http://127.0.0.1:{port}/v1", model, scripted)
    finally:

        async def stop() -> None:
            holder["server"].close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(holder["server"].wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
