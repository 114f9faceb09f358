"""Errors that stop a run before it starts: one line naming the problem and the fix (exit 2)."""

from __future__ import annotations


class RunError(RuntimeError):
    """A run cannot start; the message is one line naming the problem and the fix."""
