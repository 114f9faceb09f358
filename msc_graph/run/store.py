"""The run's memory store, from before the first session to after the last write.

An embedded Chroma folder is served by a store process of its own (``store_process.py``: Chroma
holds the GIL while it writes, which would stall every user's model calls); ``--memory-in-process``
opens it in the runner instead, and ``--chroma-url`` reaches a ``chroma run`` server. The folder is
locked before any work, so a folder in use stops the run at once.
"""

from __future__ import annotations

import asyncio
import sys

from msc_graph.config import SessionContext
from msc_graph.graphs.memory import store_locator
from msc_graph.memory.access import store_for, uninstall_store
from msc_graph.memory.store_process import (
    ProcessMemory,
    share_process_memory,
    start_process_memory,
    stop_process_memory,
)
from msc_graph.run.plan import trial_context


class RunStore:
    def __init__(self, ctx: SessionContext, in_process: bool, trials: int = 1) -> None:
        self.locator = store_locator(ctx)
        #: Each later trial's namespace of the same store (``plan.trial_context``).
        self.trial_locators = [store_locator(trial_context(ctx, t)) for t in range(1, trials)]
        self.in_process = in_process or bool(ctx.chroma_url)
        self.process: ProcessMemory | None = None
        self.shared: list[ProcessMemory] = []

    async def open(self, user_ids: list[int]) -> None:
        """Lock and open the store (``MemoryError_`` when another process holds the folder)."""
        if not self.in_process:
            self.process = await asyncio.to_thread(start_process_memory, self.locator)
        if self.process is None:
            for locator in (self.locator, *self.trial_locators):
                await asyncio.to_thread(store_for, locator)
            return
        self.shared = [share_process_memory(self.process, loc) for loc in self.trial_locators]
        for mem in (self.process, *self.shared):
            mem.warm(user_ids)

    def ready(self) -> asyncio.Future | None:
        """Resolves when the store process has the folder open (fails with the reason it cannot)."""
        return None if self.process is None else asyncio.wrap_future(self.process.ready)

    def never_opened(self) -> bool:
        ready = None if self.process is None else self.process.ready
        return bool(ready is not None and ready.done() and ready.exception() is not None)

    def close(self) -> list[str]:
        """Let the store process finish its queued writes; returns the writes that failed."""
        if self.process is None:
            return []
        for mem in self.shared:
            uninstall_store(mem.locator)
        errors = stop_process_memory(self.process)
        if errors and not self.never_opened():  # the records hold the notes; a rerun writes them
            print(
                f"warning: {len(errors)} note writes to the memory store failed (first: {errors[0]}); "
                "every session's notes are in the results file, and rerunning the same command writes them to the store",
                file=sys.stderr,
            )
        return errors
