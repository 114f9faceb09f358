"""What a running benchmark shows on stderr: a start banner, then one progress line.

The line: sessions done / total, sessions in flight, running TS / UE / Len and failures, model
requests with retries and HTTP 429s so far (throttling is visible, not a silent stall), completion
tokens per second, and an ETA. On a terminal it is one tqdm line that refreshes every second, so a
slow backend shows activity before the first session ends; when stderr is a file or a pipe (nohup, a
batch job's log) it is a plain line every ``every_s`` seconds and one at the end, so a log reads as
lines instead of one line rewritten thousands of times (a Jupyter cell counts as a terminal). The ETA knows that a memory user's sessions run one after another: the run
cannot end before its busiest user has run its remaining sessions in series.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class Progress:
    """Running sums (O(1) per finished session) and a tqdm line that a ticker refreshes."""

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
        self.bar = None
        self.enabled = enabled
        if terminal is None:  # a Jupyter cell draws a redrawn line as a terminal does
            terminal = sys.stderr.isatty() or "ipykernel" in sys.modules
        self.terminal = terminal
        self.every_s = 1.0 if self.terminal else every_s
        if enabled and not self.terminal:
            self._print_line()
        elif enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, unit="session", file=sys.stderr,
                dynamic_ncols=True, bar_format="sessions {n_fmt}/{total_fmt} |{bar:12}| {desc}",
            )  # fmt: skip
            self.refresh()

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
        if self.bar is not None:
            self.bar.update(1)
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

    def line(self) -> dict:
        requests, retries, throttled, tokens = (
            TRAFFIC.requests - self._traffic0[0],
            TRAFFIC.retries - self._traffic0[1],
            TRAFFIC.throttled - self._traffic0[2],
            TRAFFIC.completion_tokens - self._traffic0[3],
        )
        elapsed = max(1e-6, time.monotonic() - self.started_at)
        return {
            "in flight": self.in_flight,
            "TS": f"{100 * self.ts / self.ts_n:.1f}%" if self.ts_n else "n/a",
            "UE": f"{self.ue / self.n:.2f}" if self.n else "n/a",
            "Len": f"{self.length / self.n:.1f}" if self.n else "n/a",
            "failed": self.failed,
            "requests": f"{requests} ({retries} retried, {throttled}x429"
            + (f", {hits} from the cache)" if (hits := TRAFFIC.cache_hits - self._cache_hits0) else ")"),
            "tok/s": f"{tokens / elapsed:.0f}",
            "ETA": format_eta(self.eta_s()),
        }

    def _text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.line().items())

    def _print_line(self) -> None:
        print(f"sessions {self.done}/{self.total}, {self._text()}", file=sys.stderr, flush=True)

    def refresh(self) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(self._text(), refresh=False)
        self.bar.refresh()

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
        if self.bar is not None:
            self.refresh()
            self.bar.close()
        elif self.enabled:
            self._print_line()
