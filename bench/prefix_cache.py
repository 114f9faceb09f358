"""Token counts of chat requests, and what an ideal prefix cache would still have to compute.

- Tokens: litellm's packaged ``cl100k_base`` (offline: litellm points tiktoken at the file it
  ships), counted as ``litellm.token_counter`` counts a chat request: 3 + n(role) + n(content) per
  message, plus 3 for the reply's header. Llama-3's own tokenizer gives counts within a few per
  cent of cl100k_base on English text; it cannot be loaded offline here.
- The ideal prefix cache keeps every token sequence it has seen (unbounded, as SGLang's radix cache
  is until it must evict): a request's *uncached* tokens are those after the longest prefix it
  shares with any earlier request. Each request is the token sequence of its messages, each
  message a header (one symbol per header token, so a different role never matches) then its
  content's tokens; the request ends with the reply's header, which is what the next request's
  assistant message starts with.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from litellm.litellm_core_utils.default_encoding import encoding  # noqa: E402 - after the offline switch

TOKENIZER = f"{encoding.name} (litellm's packaged tiktoken file; litellm.token_counter's chat formula)"
_HEADER = {"system": -1, "user": -2, "assistant": -3}


class TokenCounter:
    """Token ids of message texts, each text encoded once."""

    def __init__(self) -> None:
        self._ids: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        got = self._ids.get(text)
        if got is None:
            got = self._ids[text] = encoding.encode(text, disallowed_special=())
        return got

    def request(self, messages: list[dict]) -> list[int]:
        """A chat request as the token sequence the server would see (``litellm.token_counter``'s length)."""
        seq: list[int] = []
        for m in messages:
            role = str(m.get("role", "user"))
            seq += [_HEADER.get(role, -4)] * (3 + len(self.ids(role)))
            seq += self.ids(str(m.get("content") or ""))
        return seq + [_HEADER["assistant"]] * 3


class PrefixCache:
    """An unbounded radix tree of token sequences: ``add`` answers how many leading tokens of a
    sequence some earlier sequence already had, then keeps the sequence."""

    def __init__(self) -> None:
        self.root: dict[int, list] = {}  # first token -> [edge tokens, child node]

    def add(self, seq: list[int]) -> int:
        node, i = self.root, 0
        while i < len(seq):
            edge = node.get(seq[i])
            if edge is None:
                node[seq[i]] = [seq[i:], {}]
                return i
            tokens, child = edge
            n = _common(tokens, seq, i)
            if n < len(tokens):  # split the edge where they part
                edge[0], edge[1] = tokens[:n], {tokens[n]: [tokens[n:], child]}
                if i + n < len(seq):
                    edge[1][seq[i + n]] = [seq[i + n :], {}]
                return i + n
            node, i = child, i + n
        return i


def _common(tokens: list[int], seq: list[int], start: int) -> int:
    """Length of the common prefix of ``tokens`` and ``seq[start:]`` (slice compares, in C)."""
    n = min(len(tokens), len(seq) - start)
    if tokens[:n] == seq[start : start + n]:
        return n
    lo, hi = 0, n  # tokens[:lo] matches, tokens[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tokens[:mid] == seq[start : start + mid]:
            lo = mid
        else:
            hi = mid
    return lo
