"""The flags every benchmark here takes: the size of the workload, the server, and where to keep results."""

from __future__ import annotations

import argparse


def workload_parser(
    doc: str, *, users: int, sessions: int, latency: float | None = None, concurrency: int | None = None
) -> argparse.ArgumentParser:
    """A parser with ``--users``, ``--sessions``, ``--json`` and, when given defaults, ``--latency``
    and ``--concurrency``; a benchmark adds its own flags to it."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=users, help="users (default: %(default)s)")
    ap.add_argument("--sessions", type=int, default=sessions, help="sessions per user (default: %(default)s)")
    if latency is not None:
        ap.add_argument("--latency", type=float, default=latency, help="server latency per request, s (default: %(default)s)")
    if concurrency is not None:
        ap.add_argument("--concurrency", type=int, default=concurrency, help="sessions in flight (default: %(default)s)")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this file")
    return ap
