"""The published protocol's rules: how replies are read, counted and graded, as the published code
does it (``--protocol published``). Facts about that code, written for this project; its texts
come from ``published_source``.

- A reply is read as the published code gets it from litellm: as the server sent it, except that
  a ``<think>`` block at its very start is taken out (litellm's reasoning parser); ``<think>``
  blocks elsewhere and harmony markup stay, except that the agent keeps only the final channel of
  a model named *oss*. Then it is read as JSON as far as ``json_repair`` can repair it; a reply is usable when each required key is
  ``in`` what came back (whatever its type), else another try is made, up to ten (an empty or
  blank reply too). Values keep their JSON types.
- The conversation holds ``str()`` of the reply's ``response``; the session ends when the
  termination signal is ``in`` that value (``should_terminate`` is not read).
- User Effort counts a log entry whose ``enforce_preferences`` is ``== True`` or ``== "True"``.
- The judge's verdict is ``int(accuracy)``; the graded draft is the last log entry's
  ``draft_answer``, or the one before it when the last entry has none.
- TS and Length are averaged per user, then over users; UE is pooled over every session.
"""

from __future__ import annotations

import re
from typing import Any

from json_repair import repair_json

from msc_graph.config import RoleConfig
from msc_graph.llm import CallResult, call_raw

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
#: The gpt-oss (harmony) marker of the final channel, and a markup token.
HARMONY_FINAL = "<|channel|>final<|message|>"
HARMONY_TOKEN = re.compile(r"<\|[^|]+\|>")
#: What litellm (current versions) takes for reasoning at the start of a reply's content.
LEADING_REASONING = re.compile(r"<(?:think|thinking|budget:thinking)>(.*?)</(?:think|thinking|budget:thinking)>(.*)", re.DOTALL)


class Unusable(ValueError):
    """A reply the published code would not use: another try (``retry``), or the session fails."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def with_keys(text: str | None, keys: tuple[str, ...], caught: bool = False) -> Any:
    """The repaired reply if every key is ``in`` it; ``Unusable`` otherwise.

    As published: a reply that lacks a key is asked again (an empty or blank reply repairs to "",
    which lacks every key); when repairing or the key test itself raises (``content: null``, a bare
    number, boolean or null), the published readers restart the session, except the notes update,
    whose loop catches the error and asks again (``caught``). A reply that is not an object but
    names every key (a list of the key names) fails where the published code indexes it."""
    try:
        value = repair_json(text, return_objects=True)
        missing = [k for k in keys if k not in value]
    except Exception as exc:  # noqa: BLE001 - whatever the published reader would raise
        raise Unusable(f"the reply cannot be read for keys ({type(exc).__name__}: {exc})"[:300], retry=caught) from None
    if missing:
        raise Unusable(f"the reply lacks {', '.join(missing)}", retry=True)
    if not isinstance(value, dict):
        raise Unusable(f"the reply is a {type(value).__name__} that names every key", retry=False)
    return value


def through_litellm(content: str | None) -> str | None:
    """A reply's content as litellm hands it to the published code: a ``<think>`` (``<thinking>``)
    block at its very start is moved out to ``reasoning_content``; nothing else is touched."""
    if not content:
        return content
    found = LEADING_REASONING.match(content)
    return found.group(2) if found else content


async def reply_text(cfg: RoleConfig, messages: list[dict]) -> CallResult:
    """One call; ``value`` is the reply's content as the published code gets it (``through_litellm``;
    ``None`` for ``content: null``); only a failed request is an error."""
    result = await call_raw(cfg, messages)
    if result.error is None:
        result.value = through_litellm(result.value)
    return result


def oss_final(content: str | None) -> str | None:
    """What the published agent keeps of a reply from a model named *oss* (harmony format): the
    text after the final channel's marker with markup tokens removed; an empty reply as it is;
    ``None`` when there is no final channel."""
    if not content:
        return content
    if HARMONY_FINAL in content:
        return HARMONY_TOKEN.sub("", content.split(HARMONY_FINAL, 1)[1]).strip()
    return None


def agent_text(cfg: RoleConfig, content: str | None) -> str | None:
    """A reply to the agent's model (its turns, note selection, notes update) as the published
    agent reads it: ``oss_final`` for a model whose name has "oss", else untouched."""
    return oss_final(content) if "oss" in cfg.model.lower() else content


async def reply_with_keys(
    cfg: RoleConfig, messages: list[dict], keys: tuple[str, ...], tries: int = REPLY_TRIES, *, agent: bool = False, caught: bool = False
) -> CallResult:
    """Ask until a reply has every key (one call per try), as the published agents do; ``agent``:
    the reply is read as the published agent reads its model's replies (``agent_text``)."""
    out = CallResult()
    for attempt in range(1, tries + 1):
        result = await reply_text(cfg, messages)
        out.usage.merge(result.usage)
        out.raw.extend(result.raw)
        if result.error:  # the server, not the reply: the session fails
            out.error, out.kind = result.error, result.kind
            return out
        text = agent_text(cfg, result.value) if agent else result.value
        try:
            out.value, out.error = with_keys(text, keys, caught), None
            return out
        except Unusable as exc:
            out.error, out.kind = f"{exc} (try {attempt} of {tries})", "content"
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
    """The draft answer the published judge grades (``KeyError``/``IndexError`` when there is none).
    The judge only sees sessions whose every turn succeeded, so each entry is a reply as the model
    wrote it: one with its own ``error`` key is a reply like any other."""
    last = turns[-1]
    return last["draft_answer"] if "draft_answer" in last else turns[-2]["draft_answer"]


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
