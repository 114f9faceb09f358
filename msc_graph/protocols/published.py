"""The published protocol's rules: how replies are read, counted and graded, as the published code
does it (``--protocol published``). Facts about that code, written for this project; its texts
come from ``published_source``.

- A reply is JSON as far as ``json_repair`` can repair it; a reply is usable when each required
  key is ``in`` what came back (whatever its type), else another try is made, up to ten. Values
  keep their JSON types.
- The conversation holds ``str()`` of the reply's ``response``; the session ends when the
  termination signal is ``in`` that value (``should_terminate`` is not read).
- User Effort counts a log entry whose ``enforce_preferences`` is ``== True`` or ``== "True"``.
- The judge's verdict is ``int(accuracy)``; the graded draft is the last log entry's
  ``draft_answer``, or the one before it when the last entry has none.
- TS and Length are averaged per user, then over users; UE is pooled over every session.
"""

from __future__ import annotations

from typing import Any

from json_repair import repair_json

from msc_graph.config import RoleConfig
from msc_graph.llm import CallResult, call_text

#: Tries per reply of the user simulator, the agent (JSON mode), the note selection and the notes update.
REPLY_TRIES = 10
#: Keys each reply must have.
USER_KEYS = ("reasoning", "draft_answer", "should_terminate", "response")
AGENT_KEYS = ("reasoning", "response")
SELECT_KEYS = ("reasoning", "relevant_notes")
NOTES_KEYS = ("user_preferences_reasoning", "agent_notes")
JUDGE_KEYS = ("reasoning", "accuracy")
#: The agent's context budget is its context size less its reply and this margin (in tokens).
CONTEXT_MARGIN = 500


class Unusable(ValueError):
    """A reply the published code would not use: another try (``retry``), or the session fails."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def repaired(text: str | None) -> Any:
    if text is None:
        raise Unusable("the reply has no content", retry=False)
    return repair_json(text, return_objects=True)


def with_keys(text: str | None, keys: tuple[str, ...]) -> Any:
    """The repaired reply if every key is ``in`` it; ``Unusable`` otherwise (``retry`` when the
    published code tries again, not when its key test itself fails on a number, a boolean or null)."""
    value = repaired(text)
    try:
        missing = [k for k in keys if k not in value]
    except TypeError:
        raise Unusable(f"the reply is a bare {type(value).__name__}, not an object", retry=False) from None
    if missing:
        raise Unusable(f"the reply lacks {', '.join(missing)}", retry=True)
    if not isinstance(value, dict):
        raise Unusable(f"the reply is a {type(value).__name__} that names every key", retry=False)
    return value


async def reply_with_keys(cfg: RoleConfig, messages: list[dict], keys: tuple[str, ...], tries: int = REPLY_TRIES) -> CallResult:
    """Ask until a reply has every key (one call per try), as the published agents do."""
    out = CallResult()
    single = cfg.model_copy(update={"parse_retries": 0})
    for attempt in range(1, tries + 1):
        result = await call_text(single, messages)
        out.usage.merge(result.usage)
        out.raw.extend(result.raw)
        if result.error and result.kind != "content":  # the server, not the reply: the session fails
            out.error, out.kind = result.error, result.kind
            return out
        try:
            out.value, out.error = with_keys(result.value, keys), None
            return out
        except Unusable as exc:
            out.error = f"{exc} (try {attempt} of {tries})"
            if not exc.retry:
                return out
    return out


def terminates(response: Any, signal: str) -> bool:
    """Whether a user reply ends the session (its ``response`` holds the signal)."""
    try:
        return signal in response
    except TypeError:
        raise Unusable(f"the response is a {type(response).__name__}", retry=False) from None


def counts_as_effort(value: Any) -> bool:
    return value == True or value == "True"  # noqa: E712 - the published test, 1 and 1.0 included


def user_effort(turns: list[dict]) -> int:
    """Log entries (user or agent) that enforce a preference, as the published count reads them."""
    return sum(1 for t in turns if "enforce_preferences" in t and counts_as_effort(t["enforce_preferences"]))


def graded_draft(turns: list[dict]) -> Any:
    """The draft answer the published judge grades (``KeyError``/``IndexError`` when there is none)."""
    log = [t for t in turns if "error" not in t]
    last = log[-1]
    return last["draft_answer"] if "draft_answer" in last else log[-2]["draft_answer"]


def accuracy(verdict: dict) -> int:
    """``int()`` of the judge's accuracy (``"1"``, true, 1.0 -> 1; 0.5 -> 0; 2 stays 2)."""
    return int(verdict["accuracy"])


def numbered(preferences: list[str]) -> str:
    return "\n".join(f"{i}. {p}" for i, p in enumerate(preferences, start=1))


def conversation_string(messages: list[dict]) -> str:
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def count_tokens(model: str, messages: list[dict]) -> int:
    """The published count of a request's tokens: litellm's ``token_counter``, offline (no
    tokenizer download; litellm then counts with its packaged cl100k_base)."""
    counter = _token_counter()
    return int(counter(model=model, messages=messages))


def truncate(messages: list[dict], model: str, budget: int) -> list[dict]:
    """Drop the message after the system prompt until the request fits (the published rule)."""
    while len(messages) > 1 and count_tokens(model, messages) > budget:
        messages = messages[:1] + messages[2:]
    return messages


_COUNTER: Any = None


def _token_counter() -> Any:
    global _COUNTER
    if _COUNTER is None:
        import os

        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price list from the network
        try:
            import litellm
        except ImportError:
            raise RuntimeError(
                "--protocol published counts the agent's context with litellm's tokenizer: pip install -e '.[published]'"
            ) from None
        litellm.disable_hf_tokenizer_download = True
        _COUNTER = litellm.token_counter
    return _COUNTER
