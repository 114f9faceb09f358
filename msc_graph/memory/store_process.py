"""Embedded Chroma in a store process of its own, for the batch runner.

Chroma's embedded client holds Python's GIL for the whole of a write (about 8 ms of CPU each, and
longer when writes queue behind each other), so inside the runner every note write stalls the event
loop that drives all the other users' model calls. The runner therefore opens embedded memory
through this module: a child process (``store_server.py``) owns the Chroma folder and serves the
store's methods over its stdin and stdout, one JSON line per request and per reply, one request at
a time.

The runner never waits for it during a run (see ``ProcessMemory``): it keeps each user's current
notes and vectors itself, and its writes are queued behind. It locks the folder itself before it
starts the child (a folder in use is refused at once) and hands the lock to the child, so the lock
lasts until both have exited. The child exits when its stdin closes, after the last queued write,
so it never outlives the runner by more than that, even when the runner was killed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import weakref
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np

from msc_graph.memory.access import StoreLocator, install_store, uninstall_store
from msc_graph.memory.lock import OWNER_ENV, MemoryError_, lock_for_child, lock_held_here, release_lock
from msc_graph.memory.store import HeldNotes, embed_text
from msc_graph.memory.store_server import LOCK_FD_ENV, decode, encode
from msc_graph.schemas import Note

#: store processes started by this process that may not have exited yet
_STARTED: weakref.WeakSet = weakref.WeakSet()


def wait_for_store_processes(timeout: float = 60.0) -> None:
    """Wait until every store process this process started has exited (and been reaped: its CPU
    time then shows in ``resource.RUSAGE_CHILDREN``). Runs do not wait for that; benchmarks do."""
    for sp in list(_STARTED):
        with contextlib.suppress(subprocess.TimeoutExpired):
            sp.proc.wait(timeout=timeout)


class StoreProcess:
    """A running store process. ``call`` blocks until the reply; ``send`` queues a request whose
    reply nobody waits for (a write behind), and any error in it is kept in ``background_errors``.
    Requests reach the child in the order they were made, through one sender thread, so the event
    loop never blocks on a full pipe. ``ready`` resolves when the child has opened the folder (or
    fails with its reason)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).mkdir(parents=True, exist_ok=True)
        lock_fd = lock_for_child(self.path)  # MemoryError_ at once when another process has the folder
        self.log_path = Path(self.path) / "store-process.log"
        try:
            with open(self.log_path, "ab") as log:  # the child's stderr, kept for diagnosis (it has its own copy)
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "msc_graph.memory.store_server", "--path", self.path],
                    env={**os.environ, OWNER_ENV: str(os.getpid()), LOCK_FD_ENV: str(lock_fd)},
                    pass_fds=(lock_fd,),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    bufsize=1,
                    start_new_session=True,  # Ctrl-C at the terminal stops the runner, which then closes this
                )
        except OSError:
            release_lock(self.path)  # no child holds it: the folder stays usable
            raise
        _STARTED.add(self)
        self.ready: Future = Future()
        self.finished: Future = Future()  # every request answered (the child then exits)
        self._gone = False
        self.background_errors: list[str] = []
        self._ids = itertools.count()
        self._pending: dict[int, Future | None] = {}
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._closed = False
        self._sender = threading.Thread(target=self._send_requests, name="msc-store-requests", daemon=True)
        self._reader = threading.Thread(target=self._read_replies, name="msc-store-replies", daemon=True)
        self._sender.start()
        self._reader.start()

    def _send_requests(self) -> None:
        assert self.proc.stdin is not None
        while (line := self._outbox.get()) is not None:
            try:
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break  # the child is gone: the reader fails what was waiting
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            reply = json.loads(line)
            if "bye" in reply:
                self.finished.set_result(True)
                continue
            if "ready" in reply:
                if reply["ready"]:
                    self.ready.set_result(True)
                else:
                    self.ready.set_exception(_as_error(reply["error"], f"cannot open the memory folder {self.path}: ", FOLDER_FIX))
                continue
            with self._lock:
                fut = self._pending.pop(reply["id"], None)
            error = reply.get("error")
            if fut is None:  # a write behind: nobody waits, but a failure is kept and reported
                if error:
                    self.background_errors.append(f"{error['type']}: {error['message']}"[:500])
            elif error:
                fut.set_exception(_as_error(error))
            else:
                fut.set_result(decode(reply["result"]))
        code = self.proc.wait()
        self._gone = True
        gone = MemoryError_(
            f"the memory store process exited (code {code}) with requests unanswered; its log is "
            f"{self.log_path}. The results file holds every finished session: rerun the same command to resume"
        )
        for fut in (self.ready, self.finished):
            if not fut.done():
                fut.set_exception(gone)
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for fut in pending:
            if fut is None:
                self.background_errors.append(str(gone))
            else:
                fut.set_exception(gone)

    def _submit(self, store: dict, method: str, args: tuple, fut: Future | None) -> None:
        with self._lock:
            if self._closed or self._gone:
                raise MemoryError_(f"the memory store process is not running; its log is {self.log_path}")
            rid = next(self._ids)
            self._pending[rid] = fut
        self._outbox.put(json.dumps({"id": rid, "store": store, "method": method, "args": encode(list(args))}) + "\n")

    def call(self, store: dict, method: str, *args: Any) -> Any:
        """Ask the child and wait for its answer (raises what it raised; ``MemoryError_`` for the
        store's own errors)."""
        fut: Future = Future()
        self._submit(store, method, args, fut)
        return fut.result()

    def send(self, store: dict, method: str, *args: Any) -> None:
        """Queue a request and return at once; its failure lands in ``background_errors``."""
        try:
            self._submit(store, method, args, None)
        except MemoryError_ as exc:
            self.background_errors.append(str(exc))

    def close(self, timeout: float = 300.0) -> None:
        """Let the child answer every queued request. It then shuts Chroma down and exits on its own
        (a few tenths of a second; ``wait_for_store_processes`` waits for that). Until it has exited
        it keeps the folder's lock, marked as closing: whoever opens the folder then waits for it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._outbox.put(None)  # the sender closes the child's stdin after the last request
        try:
            self.finished.exception(timeout=timeout)  # (an exception here is reported by the reader)
        except FutureTimeout:
            self.proc.kill()
            self.proc.wait()
        self._sender.join(timeout=5)
        release_lock(self.path, still_held_by=None if self._gone else self.proc.pid)


#: What to do about a memory folder that cannot be opened.
FOLDER_FIX = (
    "; if it is damaged, move it aside (a rerun rebuilds every user's notes from the results file) or give "
    "another --memory-dir"
)


def _as_error(error: dict, prefix: str = "", suffix: str = "") -> Exception:
    if error["type"] == "MemoryError_":
        return MemoryError_(prefix + error["message"])
    return (MemoryError_ if prefix else RuntimeError)(f"{prefix}{error['type']}: {error['message']}{suffix}")


class ProcessMemory(HeldNotes):
    """The store as the runner sees it when a store process holds the folder.

    Each user's current notes and vectors are kept here, so reads never leave the runner after a
    user's first, and writes are behind: ``areplace`` makes the notes current here at once and
    queues the Chroma write without waiting for it; the child computes the vectors of new note
    texts (off the runner's core), which are read back the first time a ranking needs them. That is
    safe because the results file is the truth:
    the runner restores each user's notes from it when it starts (``arestore``), and the child
    finishes every queued write before it exits, even when the runner was killed. Writes that
    failed are in ``background_errors`` (the runner reports them).
    """

    def __init__(self, process: StoreProcess, locator: StoreLocator) -> None:
        self.process = process
        self.locator = locator
        self.namespace = locator.namespace
        self._store = {
            "namespace": locator.namespace,
            "embedding_model": locator.embedding_model,
            "embedding_api_base": locator.embedding_api_base,
        }
        self._current: dict[str, tuple[list[dict], np.ndarray | None]] = {}

    @property
    def ready(self) -> Future:
        return self.process.ready

    @property
    def background_errors(self) -> list[str]:
        return self.process.background_errors

    def _call(self, method: str, *args: Any) -> Any:
        return self.process.call(self._store, method, *args)

    # -- reads ---------------------------------------------------------------------------

    def cached(self, user_id: int | str, with_vectors: bool = True) -> tuple[list[dict], np.ndarray | None] | None:
        state = self._current.get(str(user_id))
        if state is None or (with_vectors and state[0] and state[1] is None):
            return None
        return state

    def list(self, user_id: int | str) -> list[dict]:
        state = self._current.get(str(user_id))
        if state is None:
            state = self._current.setdefault(str(user_id), (self._call("list", user_id), None))
        return [dict(n) for n in state[0]]

    def notes_with_vectors(self, user_id: int | str) -> tuple[list[dict], np.ndarray | None]:
        held = self.cached(user_id)
        if held is None:
            notes, vectors = self._call("notes_with_vectors", user_id)
            held = self._current[str(user_id)] = (notes, vectors)
        return held

    # -- writes --------------------------------------------------------------------------

    def warm(self, user_ids: list) -> None:
        """Let the child read, in the background, which of these users have notes at all (one
        listing of the collections; users without one then cost no read and no empty collection)."""
        self.process.send(self._store, "warm", [str(u) for u in user_ids])

    def _changed(self, user_id: int | str, notes: list[dict]) -> list[dict] | None:
        clean = [Note.model_validate(n).model_dump() for n in notes]
        state = self._current.get(str(user_id))
        return None if state is not None and state[0] == clean else clean

    async def arestore(self, user_id: int | str, notes: list[dict]) -> None:
        """Make ``notes`` (from the results file) the user's notes; the child writes them only
        where the store differs. Their vectors are fetched when first needed."""
        clean = self._changed(user_id, notes)
        if clean is not None:
            self._current[str(user_id)] = (clean, None)
            self.process.send(self._store, "replace", user_id, clean, -1)

    async def areplace(self, user_id: int | str, notes: list[dict], session_index: int = -1) -> None:
        """Make ``notes`` current now and write them behind (see the class). Vectors of new note
        texts are computed by the store process, off the runner's core, and read back only when a
        ranking needs them; vectors the runner already holds travel with the write."""
        clean = self._changed(user_id, notes)
        if clean is None:
            return
        known, texts = self._known_vectors(user_id), [embed_text(n) for n in clean]
        vectors = np.stack([known[t] for t in texts]) if clean and all(t in known for t in texts) else None
        self._current[str(user_id)] = (clean, vectors)
        self.process.send(self._store, "replace", user_id, clean, session_index, vectors)

    def _known_vectors(self, user_id: int | str) -> dict[str, np.ndarray]:
        state = self._current.get(str(user_id))
        if state is None or state[1] is None:
            return {}
        return {embed_text(n): v for n, v in zip(state[0], state[1], strict=True)}

    def replace(self, user_id: int | str, notes: list[dict], session_index: int = -1) -> None:
        """Write and wait for the write."""
        clean = self._changed(user_id, notes)
        if clean is not None:
            _, vectors = self._call("replace_with_vectors", user_id, clean, session_index)
            self._current[str(user_id)] = (clean, vectors)


def start_process_memory(locator: StoreLocator) -> ProcessMemory | None:
    """Lock the embedded folder of ``locator``, start a store process for it, and install its
    ``ProcessMemory`` as this process's store for ``locator``. Returns at once; ``ready`` says when
    the child has the folder open. None when this process has the folder open already (its own
    store is used then). Raises ``MemoryError_`` when another process has it."""
    if locator.url or not locator.path:
        raise ValueError("a store process serves an embedded folder; a Chroma server is reached directly")
    if lock_held_here(locator.path):
        return None
    mem = ProcessMemory(StoreProcess(locator.path), locator)
    install_store(locator, mem)
    return mem


def share_process_memory(mem: ProcessMemory, locator: StoreLocator) -> ProcessMemory:
    """Another namespace of ``mem``'s folder (``locator``), served by the same store process and
    installed for ``locator``; forget it with ``uninstall_store`` before stopping ``mem``."""
    if locator.path != mem.locator.path or locator.url:
        raise ValueError("a shared store process serves namespaces of its own folder only")
    other = ProcessMemory(mem.process, locator)
    install_store(locator, other)
    return other


def stop_process_memory(mem: ProcessMemory) -> list[str]:
    """Forget the store in this process and let the child finish its queued writes (it then exits
    on its own; this does not wait for that). Returns the errors of writes that failed (none,
    normally)."""
    uninstall_store(mem.locator)
    mem.process.close()
    return list(mem.background_errors)

