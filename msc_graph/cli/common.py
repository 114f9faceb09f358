"""What every command shares: exit codes, one-line flag errors with suggestions, flags that answer
to both spellings, and signal handling that stops a run cleanly and says how it ended."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import ValidationError

T = TypeVar("T")

EXIT_OK = 0
#: Bad input, an unreachable endpoint, a refused output: nothing was written.
EXIT_BAD_INPUT = 2
#: The run finished but more sessions failed than ``--max-failure-rate`` allows.
EXIT_TOO_MANY_FAILURES = 3
#: A server stayed down past ``--outage-timeout``; finished sessions are saved, a rerun continues.
EXIT_OUTAGE = 4
#: The results file could not be written (disk full, say); finished sessions are saved.
EXIT_OUTPUT_FAILED = 5
#: Stopped by a signal: 128 + the signal's number (130 for Ctrl-C), as shells report it.
SIGNAL_EXIT_BASE = 128


class OneLineParser(argparse.ArgumentParser):
    """Flag errors as one line (``error: ...``) and exit code 2, like every other bad input; an
    unknown flag gets the closest known one as a suggestion."""

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            unknown = message.split(":", 1)[1].split()
            flag = next((u.split("=")[0] for u in unknown if u.startswith("--")), None)
            known = [o for a in self._actions for o in a.option_strings]
            close = difflib.get_close_matches(flag, known, n=1) if flag else []
            if close:
                message += f"; did you mean {close[0]}?"
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def both_spellings(name: str) -> list[str]:
    """``--eval-size`` and ``--eval_size``: every flag answers to both."""
    dashed, underscored = name.replace("_", "-"), name.replace("-", "_").replace("__", "--", 1)
    return list(dict.fromkeys([name, dashed, underscored]))


def add_flag(group: Any, name: str, *aliases: str, **kwargs: Any) -> argparse.Action:
    """Add ``name`` (shown in ``--help``) and its other spellings and ``aliases`` (accepted, not
    shown). The shown flag carries the default; the hidden ones never overwrite it."""
    shown = [name]
    if not name.startswith("--") and aliases:  # a short flag: shown with its long name
        shown, aliases = [name, aliases[0]], aliases[1:]
    registered = group._option_string_actions  # shared by a parser and its groups
    if shown[0] in registered:  # another spelling of a flag already there (``--user_api_base``)
        return registered[shown[0]]
    action = group.add_argument(*shown, **kwargs)
    hidden = [
        s for a in (*shown, *aliases) if a.startswith("--") for s in both_spellings(a)
        if s not in shown and s not in registered
    ]  # fmt: skip
    if hidden:
        extra = {k: v for k, v in kwargs.items() if k in ("action", "type", "choices", "nargs", "dest", "const")}
        extra.setdefault("dest", action.dest)
        group.add_argument(*dict.fromkeys(hidden), default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)
    return action


def run_until_signal(
    main: Callable[[], Awaitable[T]], on_signal: Callable[[str], None] | None = None
) -> tuple[T | None, str | None]:
    """Run ``main()`` on a new event loop; SIGINT, SIGTERM and SIGHUP cancel it cleanly (a second
    signal while it stops changes nothing; ``on_signal`` hears the first one's name). Returns (its
    result, the signal's name or None)."""
    received: list[str] = []

    async def runner() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(sig: signal.Signals) -> None:
            if not received:
                received.append(sig.name)
                print(f"\n{sig.name}: stopping; finished sessions are saved", file=sys.stderr, flush=True)
                if on_signal is not None:
                    on_signal(sig.name)
                task.cancel()

        installed = []
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        try:
            return await main()
        finally:
            _uninstall(loop, installed, ignore_from_now=bool(received))

    try:
        result = asyncio.run(runner())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return None, received[0] if received else "SIGINT"
    return result, (received[0] if received else None)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _uninstall(loop: asyncio.AbstractEventLoop, installed: list, ignore_from_now: bool) -> None:
    """Take the loop's handlers off. After a stop signal, later ones are ignored while the run
    finishes writing: removing a loop handler restores the default action (which kills), so the
    signals are blocked from the removal until SIG_IGN is set, and one that came meanwhile is
    discarded when they are unblocked."""
    if not ignore_from_now:
        for sig in installed:
            loop.remove_signal_handler(sig)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def signal_exit_code(name: str) -> int:
    return SIGNAL_EXIT_BASE + int(getattr(signal, name, signal.SIGINT))


def bad_input(exc: Exception) -> int:
    """One ``error:`` line for input a command cannot use, and exit code 2."""
    message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def validation_message(exc: ValidationError) -> str:
    """One line for the first invalid setting, named by its flag."""
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"] if p != "session"]
    msg = first["msg"].removeprefix("Value error, ")
    if not loc:
        return msg
    flag = "--" + "-".join(loc).replace("_", "-")
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"invalid {flag}: {msg}{shown}"
