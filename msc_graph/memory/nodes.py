"""Memory nodes of the session graph: load notes, retrieve or select them per turn, reflect after.

Chroma calls block, so they run in a worker thread (``asyncio.to_thread``), never on the loop.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

import numpy as np
from langgraph.runtime import Runtime

from msc_graph.graphs.context import SessionContext, context_of, role_configs
from msc_graph.graphs.state import SessionState
from msc_graph.llm import call_json
from msc_graph.memory.embeddings import make_embedding
from msc_graph.memory.notes import notes_as_text
from msc_graph.memory.store import PreferenceMemory, embed_text, open_memory, opened_memory, rank_notes
from msc_graph.prompts import REFLECTION_PROMPT, SELECT_NOTES_PROMPT, transcript_text
from msc_graph.schemas import NoteSelection, ReflectionResult

#: Memory modes whose notes are learned by reflection and kept in the store.
LEARNING_MODES = ("notes", "retrieval", "select")


def store_args(ctx: SessionContext) -> dict:
    """The arguments that name the run's store (``open_memory``'s)."""
    return {
        "path": ctx.chroma_path,
        "url": ctx.chroma_url or None,
        "namespace": ctx.memory_namespace,
        "embedding_model": ctx.embedding_model,
        "embedding_api_base": ctx.embedding_api_base,
    }


def memory_for(ctx: SessionContext) -> PreferenceMemory:
    return open_memory(**store_args(ctx))


async def in_store(ctx: SessionContext, method: str, *args):
    """Open the store and call one of its methods in a worker thread (opening touches the disk too)."""
    return await asyncio.to_thread(lambda: getattr(memory_for(ctx), method)(*args))


async def current_notes(ctx: SessionContext, user_id: int | str, with_vectors: bool) -> tuple[list[dict], np.ndarray | None]:
    """The user's notes (and their vectors): from this process when it holds them, as it does on
    most agent turns (no thread hop), else read from the store in a worker thread."""
    mem = opened_memory(**store_args(ctx))
    held = mem.cached(user_id, with_vectors) if mem is not None else None
    if held is not None:
        return held
    if with_vectors:
        return await in_store(ctx, "notes_with_vectors", user_id)
    return await in_store(ctx, "list", user_id), None


async def opened_store(ctx: SessionContext) -> PreferenceMemory:
    """The run's store: the one open in this process, else opened in a worker thread (it touches disk)."""
    return opened_memory(**store_args(ctx)) or await asyncio.to_thread(memory_for, ctx)


async def replace_notes(ctx: SessionContext, user_id: int | str, notes: list[dict], session_index: int) -> None:
    """Make ``notes`` the user's notes: written behind when the runner's store process holds the
    store (``ProcessMemory.areplace``), else written now in a worker thread."""
    await (await opened_store(ctx)).areplace(user_id, notes, session_index, query_embedding(ctx))


async def load_notes(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """Notes at session start: given in the input, else read from the user's collection."""
    ctx = context_of(runtime)
    if state.get("notes") is not None:
        return {"notes_before": list(state["notes"])}
    notes, _ = await current_notes(ctx, state["user_id"], with_vectors=False)
    return {"notes_before": [dict(n) for n in notes]}


def _latest_user_message(state: SessionState) -> str:
    return next((m["content"] for m in reversed(state["messages"]) if m["role"] == "user"), "")


async def retrieve_notes(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """The notes most relevant to the latest user message (top-k above a similarity threshold)."""
    ctx = context_of(runtime)
    turn = state.get("user_turns", 0)
    if state.get("notes") is not None:  # notes given in the input: rank them with the same embedding
        hits = await asyncio.to_thread(_rank_given, ctx, state["notes"], _latest_user_message(state))
    else:
        # the notes and their vectors come from the store (a worker thread: it may read disk);
        # the query's vector is awaited on the loop; ranking a handful of notes is a dot product.
        notes, vectors = await current_notes(ctx, state["user_id"], with_vectors=True)
        hits = []
        if notes:
            query = (await query_embedding(ctx).aembed_query([_latest_user_message(state)]))[0]
            scored = rank_notes(notes, vectors, query, ctx.retrieval_k, ctx.retrieval_threshold)
            hits = [{**s.note, "score": s.score} for s in scored]
    return {"retrieved": [{"user_turn": turn, "notes": hits}]}


@lru_cache(maxsize=16)
def _embedding(model: str, api_base: str):
    return make_embedding(model, api_base)


def query_embedding(ctx: SessionContext):
    """The run's embedding function (one per model and endpoint in this process)."""
    return _embedding(ctx.embedding_model, ctx.embedding_api_base)


def _rank_given(ctx: SessionContext, notes: list[dict], query: str) -> list[dict]:
    """Rank notes given in the input (no store) exactly as the store ranks its own."""
    if not notes:
        return []
    emb = query_embedding(ctx)
    vectors = np.asarray(emb([embed_text(n) for n in notes]), dtype=np.float32)
    scored = rank_notes(notes, vectors, emb.embed_query([query])[0], ctx.retrieval_k, ctx.retrieval_threshold)
    return [{**s.note, "score": s.score} for s in scored]


async def select_notes(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """An LLM picks the notes that matter for the next reply (the published scaffolding step)."""
    ctx = context_of(runtime)
    notes = state.get("notes_before") or []
    turn = state.get("user_turns", 0)
    if not notes:
        return {"retrieved": [{"user_turn": turn, "notes": []}]}
    cfg = role_configs(ctx)["agent"]
    prompt = SELECT_NOTES_PROMPT.format(notes=notes_as_text(notes), conversation=transcript_text(state["messages"]))
    result = await call_json(cfg, [{"role": "user", "content": prompt}], NoteSelection)
    usage = {"agent_select": result.usage.as_dict()}
    if not result.ok:  # selection failing is not fatal: fall back to all notes, and say so
        return {
            "usage": usage,
            "retrieved": [{"user_turn": turn, "notes": notes, "select_error": result.error}],
        }
    picked = [notes[i - 1] for i in dict.fromkeys(result.value.relevant_notes) if 1 <= i <= len(notes)]
    return {"usage": usage, "retrieved": [{"user_turn": turn, "notes": picked}]}


async def reflect(state: SessionState, runtime: Runtime[SessionContext]) -> dict:
    """Update the user's notes from the finished conversation; on failure the old notes stay."""
    ctx = context_of(runtime)
    before = state.get("notes_before") or []
    cfg = role_configs(ctx)["agent"]
    prompt = REFLECTION_PROMPT.format(notes=notes_as_text(before), conversation=transcript_text(state["messages"]))
    result = await call_json(cfg, [{"role": "user", "content": prompt}], ReflectionResult)
    usage = {"agent_reflect": result.usage.as_dict()}
    if not result.ok:
        return {
            "usage": usage,
            "notes_after": before,
            "reflection": {"error": result.error, "raw": result.raw},
        }
    notes = [n.model_dump() for n in result.value.notes if n.preference.strip()]
    if state.get("notes") is None:  # the store is the memory: replace the user's notes atomically
        await replace_notes(ctx, state["user_id"], notes, state.get("session_index", -1))
    return {
        "usage": usage,
        "notes_after": notes,
        "reflection": {"reasoning": result.value.reasoning, "raw": result.raw[-1]},
    }
