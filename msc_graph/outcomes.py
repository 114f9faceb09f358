"""How a session ends, and the classes of failure (closed sets; records use them as they are).

- ``EndedBy``: ``terminate`` (the user ended it), ``max_turns`` (the turn cap), ``failure``.
- ``FailureStage``: where it stopped: ``user`` (the simulator), ``agent``, ``judge``, ``memory``
  (a memory design that could not recall or learn), ``internal`` (a bug; caught and recorded).
- ``FailureKind``: why, which decides what a rerun does (``--retry-failed``):
  ``infrastructure`` (connection errors, timeouts, HTTP 5xx/429 after every retry: the server, not
  the session; retried by default), ``content`` (replies that stayed unusable after the parse
  retries, or a request the server refused), ``internal``.
"""

from __future__ import annotations

from typing import Literal

EndedBy = Literal["terminate", "max_turns", "failure"]
FailureStage = Literal["user", "agent", "judge", "memory", "internal"]
FailureKind = Literal["infrastructure", "content", "internal"]


def failure(stage: FailureStage, reason: str, kind: FailureKind) -> dict:
    """A session's failure as state and records hold it."""
    return {"stage": stage, "reason": reason, "kind": kind}


def kind_of_exception(exc: BaseException) -> FailureKind:
    """The class of an exception that stopped a session."""
    from msc_graph.transport import BadReply, EndpointError, is_retryable

    if isinstance(exc, EndpointError):
        status = exc.status_code
        return "infrastructure" if status is None or is_retryable(status) else "content"
    if isinstance(exc, BadReply):
        return "infrastructure"
    if getattr(exc, "infrastructure", False):  # e.g. an embeddings endpoint that is down
        return "infrastructure"
    return "internal"
