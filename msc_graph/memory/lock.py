"""The lock that keeps one embedded Chroma folder in one process at a time.

A folder holds a ``.msc-lock`` file locked with ``flock`` for the life of the process that opened
it. The runner's store process (``store_process.py``) holds it on behalf of its runner: the runner
locks first and hands the descriptor to the child, so the lock lasts until both have exited, and
a folder whose holder is on its way out (closing, or its runner killed) is waited for instead of
refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any


class MemoryError_(RuntimeError):
    """The memory store cannot be used; the message says why and what to do."""


_LOCKS: dict[str, Any] = {}
_LOCKS_GUARD = threading.Lock()


#: the process a lock is held for: a store process holds the folder on behalf of its runner
OWNER_ENV = "MSC_STORE_OWNER_PID"
#: how long to wait for a folder held by a store process on its way out (its runner was killed a
#: moment ago, or closed it and went on without waiting for it to exit)
ORPHAN_LOCK_WAIT_S = 20.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_is_leaving(handle: Any) -> bool:
    """True when the lock's holder is a store process on its way out: its runner closed it, or no
    longer exists (killed), or is this process."""
    try:
        handle.seek(0)
        fields = handle.read().split()
        if "closing" in fields:
            return True
        return len(fields) >= 2 and (int(fields[1]) == os.getpid() or not _pid_alive(int(fields[1])))
    except (OSError, ValueError):
        return False


def lock_directory(path: Path) -> None:
    """Hold an exclusive lock on ``path`` for this process's lifetime."""
    key = str(path.resolve())
    with _LOCKS_GUARD:
        if key in _LOCKS:
            return
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / ".msc-lock", "a+")  # noqa: SIM115 - held open on purpose
        deadline = time.monotonic() + ORPHAN_LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _holder_is_leaving(handle) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                handle.close()
                raise MemoryError_(
                    f"memory folder {path} is in use by another process; embedded Chroma must not be opened "
                    "twice. Give each run its own --memory-dir, or share memory through a `chroma run` "
                    "server with --chroma-url"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {os.environ.get(OWNER_ENV) or os.getpid()}")
        handle.flush()
        _LOCKS[key] = handle


def lock_held_here(path: str | Path) -> bool:
    """True when this process already holds the folder (its store is open in this process)."""
    with _LOCKS_GUARD:
        return str(Path(path).resolve()) in _LOCKS


def lock_for_child(path: str | Path) -> int:
    """Lock ``path`` in this process and return the lock's file descriptor, to hand to a child
    process (``adopt_lock`` there): the lock is then held until both have closed it, so a store
    process keeps the folder even after its runner was killed."""
    lock_directory(Path(path))
    with _LOCKS_GUARD:
        return _LOCKS[str(Path(path).resolve())].fileno()


def adopt_lock(path: str | Path, fd: int) -> None:
    """In a child: the folder is locked through ``fd``, inherited from the process that started it."""
    with _LOCKS_GUARD:
        _LOCKS[str(Path(path).resolve())] = os.fdopen(fd, "a+")


def release_lock(path: str | Path, still_held_by: int | None = None) -> None:
    """Give up this process's hold on the folder; ``still_held_by``: the pid of a child that shares
    the lock and is shutting down (others then wait for it instead of being refused)."""
    with _LOCKS_GUARD:
        handle = _LOCKS.pop(str(Path(path).resolve()), None)
    if handle is None:
        return
    if still_held_by is not None:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
            handle.write(f"{still_held_by} {os.getpid()} closing")
            handle.flush()
    handle.close()
