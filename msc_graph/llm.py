"""The one way this project talks to models: langchain-openai's ``ChatOpenAI`` against an
OpenAI-compatible endpoint, plus a helper that gets a validated JSON object out of a reply.

- Every request has a timeout and bounded retries with backoff (``msc_graph.transport``: one
  retry policy, which honours ``Retry-After`` on 429/503).
- At most ``max_inflight`` requests per endpoint are in flight from this process.
- Structured output is enforced by the server where it can be (``json_schema``, or llama.cpp's
  ``json_object`` with a ``schema``); otherwise the keys are in the prompt and the reply is parsed
  tolerantly with json-repair. Every reply is validated by its pydantic schema and retried a
  bounded number of times; a call that still fails returns its reason and its class
  (``msc_graph.outcomes``), it never raises into the graph.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from json_repair import repair_json
from langchain_core.messages import AIMessage
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import _tracing_v2_is_enabled
from pydantic import BaseModel, ValidationError

from msc_graph.clients import (
    NULL_CONTENT,
    ChatOpenAICompatible,
    base_extra_body,
    chat_model,
    endpoint_semaphore,
)
from msc_graph.config import RoleConfig
from msc_graph.counters import TRAFFIC
from msc_graph.outcomes import FailureKind, kind_of_exception
from msc_graph.prompts import JSON_CUT_OFF_HINT, JSON_RETRY_HINT
from msc_graph.schemas import encodable
from msc_graph.security import redact
from msc_graph.transport import BadReply

T = TypeVar("T", bound=BaseModel)

_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_HARMONY_TOKEN_RE = re.compile(r"<\|[^|>]+\|>")
_HARMONY_FINAL = "<|channel|>final<|message|>"

#: The most characters a reply may hold per token of ``max_tokens`` (a token is rarely over 16
#: characters); beyond it the server ignored ``max_tokens`` and the reply is cut (``cap_reply``).
REPLY_CHARS_PER_TOKEN = 32

#: Sampling temperature for retrying a temperature-0 call whose reply could not be used.
RETRY_TEMPERATURE = 0.7

# Endpoints where the server refused ``json_schema``: later calls go straight to the fallback.
_SCHEMA_REFUSED: set[str] = set()

#: The sampling seed of the session being run (``--trials``) and how many calls it has made.
_SESSION_SEED: ContextVar[tuple[int, itertools.count] | None] = ContextVar("msc_session_seed", default=None)


@contextlib.contextmanager
def sampling_seed(seed: int | None) -> Iterator[None]:
    """Inside, every model call sends the OpenAI ``seed`` field: ``seed`` plus the call's number in
    this context (so a retried call samples anew). ``None`` sends no seed (the default)."""
    token = _SESSION_SEED.set(None if seed is None else (seed, itertools.count()))
    try:
        yield
    finally:
        _SESSION_SEED.reset(token)


def _seed_kwargs() -> dict:
    seeded = _SESSION_SEED.get()
    return {} if seeded is None else {"seed": (seeded[0] + next(seeded[1])) & 0x7FFFFFFF}


def strip_reasoning(text: str | None) -> str:
    """Remove reasoning-model markup: ``<think>`` blocks and gpt-oss (harmony) channels."""
    if not text:
        return ""
    if _HARMONY_FINAL in text:
        text = text.split(_HARMONY_FINAL, 1)[1]
    elif "<|channel|>" in text:
        return ""  # an analysis channel with no final channel: nothing meant for the reader
    text = _HARMONY_TOKEN_RE.sub("", text)
    text = _THINK_RE.sub("", text)
    if "</think>" in text.lower():  # servers that drop the opening tag
        text = re.split(r"</think>", text, flags=re.IGNORECASE)[-1]
    return text.strip()


@dataclass
class Usage:
    """Token counts for one role, summed over calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    latency_s: float = 0.0

    def add_message(self, msg: AIMessage, latency_s: float) -> None:
        self.calls += 1
        self.latency_s += latency_s
        meta = getattr(msg, "usage_metadata", None) or {}
        prompt, completion = int(meta.get("input_tokens") or 0), int(meta.get("output_tokens") or 0)
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        TRAFFIC.completion_tokens += completion
        details = meta.get("input_token_details") or {}
        self.cached_prompt_tokens += int(details.get("cache_read") or 0)

    def merge(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.latency_s += other.latency_s

    def as_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "latency_s": round(self.latency_s, 4),
        }


def merge_usage(left: dict | None, right: dict | None) -> dict:
    """Reducer for per-role usage dicts: ``{"user": {...}, "agent": {...}}`` summed key by key."""
    out: dict = {k: dict(v) for k, v in (left or {}).items()}
    for role, counts in (right or {}).items():
        slot = out.setdefault(role, {})
        for k, v in counts.items():
            slot[k] = round(slot.get(k, 0) + v, 4) if isinstance(v, float) else slot.get(k, 0) + v
    return out


@dataclass
class CallResult:
    """What one logical call produced: the validated object or text, raw replies, usage, failure."""

    value: Any = None
    raw: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    #: The class of ``error``: infrastructure (the server), content (the replies), internal.
    kind: FailureKind = "content"

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_text(exc: BaseException) -> str:
    """What a failed call records: the error, with keys and credentials an error body may echo hidden."""
    return redact(f"{type(exc).__name__}: {exc}")[:500]


def _is_schema_refusal(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    text = str(exc).lower()
    return status in (400, 422) and ("response_format" in text or "json_schema" in text or "schema" in text)


def _observed() -> bool:
    """Whether anyone listens to model calls: LangSmith tracing, or callbacks in the run's config
    (LangGraph Studio and ``astream(stream_mode="messages")`` attach some)."""
    if _tracing_v2_is_enabled():
        return True
    config = var_child_runnable_config.get() or {}
    callbacks = config.get("callbacks")
    handlers = getattr(callbacks, "handlers", callbacks)
    return bool(handlers)


async def _invoke(cfg: RoleConfig, messages: list[dict], usage: Usage, **kwargs) -> AIMessage:
    """One model call. Without listeners it skips LangChain's callback set-up (about 0.5 ms of CPU
    per call, a fifth of the client's cost in a batch run); with listeners it is ``ainvoke``."""
    model = chat_model(cfg)
    kwargs.update(_seed_kwargs())
    async with endpoint_semaphore(cfg):
        start = time.perf_counter()
        if isinstance(model, ChatOpenAICompatible) and not _observed():
            result = await model._agenerate(messages, **kwargs)
            msg = result.generations[0].message
        else:
            msg = await model.ainvoke(messages, **kwargs)
    usage.add_message(msg, time.perf_counter() - start)
    cap_reply(msg, cfg.max_tokens)
    return msg


def cap_reply(msg: AIMessage, max_tokens: int) -> None:
    """Cut a reply longer than ``max_tokens`` tokens could be (a server that ignores the limit: a 1 MB
    reply) as if the server had stopped there (``finish_reason`` length), so what a session holds,
    and a record carries, stays bounded."""
    limit = REPLY_CHARS_PER_TOKEN * max(max_tokens, 1024)
    if isinstance(msg.content, str) and len(msg.content) > limit:
        msg.content = msg.content[:limit]
        msg.response_metadata = {**(msg.response_metadata or {}), "finish_reason": "length"}


async def call_text(cfg: RoleConfig, messages: list[dict]) -> CallResult:
    """A plain-text reply with reasoning markup stripped; raw text kept in ``raw``.

    An empty reply or a body that is not a completion is retried up to ``parse_retries`` times.
    """
    result = CallResult()
    for attempt in range(cfg.parse_retries + 1):
        try:
            msg = await _invoke(cfg, messages, result.usage)
        except BadReply as exc:
            result.error, result.kind = redact(f"{exc} (after {attempt + 1} attempt(s))"), "infrastructure"
            continue
        except Exception as exc:  # noqa: BLE001 - recorded, never raised into the graph
            result.error, result.kind = _error_text(exc), kind_of_exception(exc)
            return result
        raw = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
        result.raw.append(raw)
        text = encodable(strip_reasoning(raw))
        if text:
            result.value, result.error = text, None
            return result
        result.error, result.kind = f"empty reply after {attempt + 1} attempt(s)", "content"
    return result


async def call_raw(cfg: RoleConfig, messages: list[dict]) -> CallResult:
    """One call whose ``value`` is the reply's content exactly as the server sent it: nothing
    stripped, an empty reply kept, ``None`` for ``content: null`` (``--protocol published`` reads
    replies this way). Only a failed request is an error."""
    result = CallResult()
    try:
        msg = await _invoke(cfg, messages, result.usage)
    except Exception as exc:  # noqa: BLE001 - recorded, never raised into the graph
        result.error, result.kind = _error_text(exc), "infrastructure" if isinstance(exc, BadReply) else kind_of_exception(exc)
        return result
    raw = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
    result.raw.append(raw)
    result.value = None if msg.response_metadata.get(NULL_CONTENT) and not raw else encodable(raw)
    return result


@lru_cache(maxsize=128)
def response_format_for(mode: str, schema: type[BaseModel]) -> dict | None:
    """The ``response_format`` for a schema (cached: building a JSON schema is not free)."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": False},
        }
    if mode == "json_object":
        return {"type": "json_object", "schema": schema.model_json_schema()}
    return None


def parse_json_reply(raw: str, schema: type[T]) -> T:
    """Parse a reply into ``schema``: strips markup and fences, repairs JSON, validates.

    Raises ``ValueError`` with a short reason when the reply cannot be used.
    """
    text = encodable(strip_reasoning(raw))
    if not text:
        raise ValueError("empty reply")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = repair_json(text, return_objects=True)
    if isinstance(data, list):  # some models wrap the object in a list
        data = next((d for d in data if isinstance(d, dict)), data)
    if not isinstance(data, dict):
        raise ValueError(f"reply is not a JSON object: {text[:120]!r}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ValueError(f"invalid {schema.__name__}: {problems}") from None


async def call_json(cfg: RoleConfig, messages: list[dict], schema: type[T]) -> CallResult:
    """A reply validated by ``schema``, with bounded parse retries. Never raises."""
    result = CallResult()
    mode = cfg.structured
    if mode == "auto":
        mode = "prompt" if cfg.base_url in _SCHEMA_REFUSED else "json_schema"
    keys = ", ".join(schema.model_fields)
    convo = list(messages)
    for attempt in range(cfg.parse_retries + 1):
        fmt = response_format_for(mode, schema)
        # ``response_format`` travels in ``extra_body``: as a real argument langchain would take the
        # client's ``parse`` path, which walks the whole request (schema included) in Python per call.
        extra: dict = {"extra_body": {**(base_extra_body(cfg) or {}), "response_format": fmt}} if fmt else {}
        if attempt and cfg.temperature == 0:
            # a deterministic call that failed would fail the same way again: retry with some sampling
            extra["temperature"] = RETRY_TEMPERATURE
        try:
            msg = await _invoke(cfg, convo, result.usage, **extra)
        except BadReply as exc:
            result.error, result.kind = redact(f"{exc} (after {attempt + 1} attempt(s))"), "infrastructure"
            continue
        except Exception as exc:  # noqa: BLE001
            if fmt is not None and cfg.structured == "auto" and _is_schema_refusal(exc):
                _SCHEMA_REFUSED.add(cfg.base_url)
                mode = "prompt"
                continue
            result.error, result.kind = _error_text(exc), kind_of_exception(exc)
            return result
        raw = msg.content if isinstance(msg.content, str) else json.dumps(msg.content)
        result.raw.append(raw)
        try:
            result.value = parse_json_reply(raw, schema)
            result.error = None
            return result
        except ValueError as exc:
            if (msg.response_metadata or {}).get("finish_reason") == "length":
                # cut off mid-reply: showing the truncated text again only invites more of it
                result.error, result.kind = (
                    f"reply cut off at max_tokens ({cfg.max_tokens}) after {attempt + 1} attempt(s): {exc}",
                    "content",
                )
                convo = [*messages, {"role": "user", "content": JSON_CUT_OFF_HINT.format(keys=keys)}]
                continue
            result.error, result.kind = f"unparseable reply after {attempt + 1} attempt(s): {exc}", "content"
            convo = [
                *messages,
                {"role": "assistant", "content": raw[:4000]},
                {"role": "user", "content": JSON_RETRY_HINT.format(error=exc, keys=keys)},
            ]
    return result
