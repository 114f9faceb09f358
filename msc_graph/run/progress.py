"""What a running benchmark shows on stderr: a start banner, then one progress line.

The line: sessions done / total, the rate (sessions a minute), an ETA, running TS / UE / Len and
failures, sessions in flight, model requests with retries and HTTP 429s so far (throttling is
visible, not a silent stall) and completion tokens per second. On a terminal it is one line redrawn
every second, so a slow backend shows activity before the first session ends; it is fitted to the
terminal's width (80 columns when the terminal reports none, as some do with a width of 0) by
leaving out the least important parts, never done / total, rate and ETA. When stderr is a file or
a pipe (nohup, a batch job's log) it is a plain line every ``every_s`` seconds and one at the end,
so a log reads as lines instead of one line rewritten thousands of times (a Jupyter cell counts as
a terminal). The ETA knows that a memory user's sessions run one after another: the run cannot end
before its busiest user has run its remaining sessions in series.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

from msc_graph.counters import TRAFFIC


def banner(lines: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.rjust(width)}: {v}" for k, v in lines)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


#: The width assumed when the terminal reports none (0 columns, or no terminal at all: Jupyter).
DEFAULT_WIDTH = 80


def terminal_width(stream) -> int:
    """Columns of ``stream``'s terminal; ``COLUMNS``, then :data:`DEFAULT_WIDTH` when it reports 0."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    if columns <= 0:
        env = os.environ.get("COLUMNS", "")
        columns = int(env) if env.isdigit() and int(env) > 0 else DEFAULT_WIDTH
    return columns


def format_rate(per_s: float | None) -> str:
    """Sessions per minute (per hour when slower than one a minute)."""
    if not per_s:
        return "?/min"
    return f"{60 * per_s:.1f}/min" if per_s * 60 >= 1 else f"{3600 * per_s:.1f}/h"


def fit(parts: list[str], width: int, sep: str = ", ") -> str:
    """``parts`` joined, leaving out (from the end) those that would pass ``width``; the first always stays."""
    out = parts[0]
    for part in parts[1:]:
        if len(out) + len(sep) + len(part) <= width:
            out += sep + part
    return out


class Progress:
    """Running sums (O(1) per finished session) and the line that a ticker refreshes."""

    def __init__(
        self,
        total: int,
        initial: int,
        enabled: bool,
        records: list[dict],
        *,
        remaining_per_user: dict[int, int] | None = None,
        in_series: bool = False,
        concurrency: int = 1,
        every_s: float = 30.0,
        terminal: bool | None = None,
    ) -> None:
        self.total, self.done = total, initial
        self.n = self.ts_n = self.failed = 0
        self.ts = self.ue = self.length = 0.0
        self.in_flight = 0
        self.remaining = dict(remaining_per_user or {})
        self.in_series = in_series
        self.concurrency = concurrency
        self.started_at = time.monotonic()
        self.new = 0
        self._traffic0 = (TRAFFIC.requests, TRAFFIC.retries, TRAFFIC.throttled, TRAFFIC.completion_tokens)
        self._cache_hits0 = TRAFFIC.cache_hits
        for r in records:
            self._count(r)
        self.enabled = enabled
        if terminal is None:  # a Jupyter cell draws a redrawn line as a terminal does
            terminal = sys.stderr.isatty() or "ipykernel" in sys.modules
        self.terminal = terminal
        self.every_s = 1.0 if self.terminal else every_s
        self._drawn = 0  # columns the redrawn line took last time
        if enabled:
            self.refresh() if self.terminal else self._print_line()

    def _count(self, r: dict) -> None:
        if r.get("failure"):
            self.failed += 1
            return
        self.n += 1
        self.ue += r["user_effort"]
        self.length += r["length"]
        if r.get("task_success") is not None:
            self.ts_n += 1
            self.ts += r["task_success"]

    def session_started(self) -> None:
        self.in_flight += 1

    def update(self, record: dict) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.done += 1
        self.new += 1
        uid = record.get("user_id")
        if uid in self.remaining:
            self.remaining[uid] = max(0, self.remaining[uid] - 1)
        self._count(record)
        self.refresh()

    def eta_s(self) -> float | None:
        """Seconds left: sessions left at the observed rate, but never less than the busiest memory
        user's sessions left one after another."""
        if not self.new:
            return None
        elapsed = time.monotonic() - self.started_at
        left = self.total - self.done
        by_rate = left * elapsed / self.new
        if not self.in_series or not self.remaining:
            return by_rate
        per_session = elapsed * min(self.concurrency, max(1, self.in_flight or 1)) / self.new
        return max(by_rate, max(self.remaining.values()) * per_session)

    def rate_per_s(self) -> float | None:
        """Sessions finished per second in this run (resumed ones not counted)."""
        return self.new / max(1e-6, time.monotonic() - self.started_at) if self.new else None

    def line(self) -> dict:
        requests, retries, throttled, tokens = (
            TRAFFIC.requests - self._traffic0[0],
            TRAFFIC.retries - self._traffic0[1],
            TRAFFIC.throttled - self._traffic0[2],
            TRAFFIC.completion_tokens - self._traffic0[3],
        )
        elapsed = max(1e-6, time.monotonic() - self.started_at)
        return {
            "rate": format_rate(self.rate_per_s()),
            "ETA": format_eta(self.eta_s()),
            "in flight": self.in_flight,
            "TS": f"{100 * self.ts / self.ts_n:.1f}%" if self.ts_n else "n/a",
            "UE": f"{self.ue / self.n:.2f}" if self.n else "n/a",
            "Len": f"{self.length / self.n:.1f}" if self.n else "n/a",
            "failed": self.failed,
            "requests": f"{requests} ({retries} retried, {throttled}x429"
            + (f", {hits} from the cache)" if (hits := TRAFFIC.cache_hits - self._cache_hits0) else ")"),
            "tok/s": f"{tokens / elapsed:.0f}",
        }

    def _text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.line().items())

    def _print_line(self) -> None:
        print(f"sessions {self.done}/{self.total}, {self._text()}", file=sys.stderr, flush=True)

    def terminal_line(self, width: int) -> str:
        """The redrawn line, at most ``width - 1`` columns (the last column would wrap on some terminals):
        done / total, rate and ETA always; then what fits, most important first."""
        fields = self.line()
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        head = f"sessions {self.done}/{self.total}{pct} {fields.pop('rate')} ETA {fields.pop('ETA')}"
        measures = f"TS {fields.pop('TS')} UE {fields.pop('UE')} Len {fields.pop('Len')}"
        rest = [measures, *(f"{k} {v}" for k, v in fields.items())]
        return fit([head, *rest], max(1, width - 1))

    def refresh(self) -> None:
        if not (self.enabled and self.terminal):
            return
        # back to the line's start and draw it; spaces blank what a longer earlier line left to its
        # right (no escape codes: a Jupyter cell shows them as text)
        width = terminal_width(sys.stderr)
        text = self.terminal_line(width)
        sys.stderr.write("\r" + text.ljust(min(self._drawn, width - 1)))
        sys.stderr.flush()
        self._drawn = len(text)

    async def tick(self) -> None:
        """Refresh the line (a terminal) or print one (a log) every ``every_s`` seconds until cancelled."""
        if not self.enabled:
            return
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.every_s)
                if self.terminal:
                    self.refresh()
                else:
                    self._print_line()

    def close(self) -> None:
        if self.enabled and self.terminal:
            self.refresh()
            sys.stderr.write("\n")  # the last state stays on screen; what follows starts a new line
            sys.stderr.flush()
        elif self.enabled:
            self._print_line()
