"""The output of a run: one writer per results file, and a file that is safe to write.

- :class:`OutputLock`: ``<output>.lock`` is held (``flock``) for the whole run, memory or not; a
  second runner on the same output is refused at once with one line naming the holder.
- :func:`check_output_path`: a path that is a folder, sits under a file, or cannot be written is
  one line naming the problem, before anything is written.
- :class:`RecordWriter` (``msc_graph.results.files``) appends one line per record with one ``write``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from msc_graph.results.files import manifest_path
from msc_graph.run.errors import RunError
from msc_graph.security import redacted_argv


def lock_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".lock")


def check_output_path(output: str | Path) -> None:
    """One line naming the problem when ``output`` cannot be a results file."""
    output = Path(output)
    if output.is_dir():
        raise RunError(f"--output_file {output} is a folder; give a file path such as {output / 'results.jsonl'}")
    for path in (output, manifest_path(output), lock_path(output)):
        if path.exists() and not path.is_file():
            raise RunError(f"{path} exists and is not a file; move it aside or choose another --output_file")
    ancestor = output.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunError(f"--output_file {output}: {ancestor} is a file, not a folder; choose another --output_file")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise RunError(f"--output_file {output}: {ancestor if not output.exists() else output} is not writable; "
                       "choose another --output_file")  # fmt: skip


class OutputLock:
    """Hold ``<output>.lock`` for this process: the only writer of ``output``.

    The lock file says who holds it (pid, host, start, command line without secrets). It is
    removed on release; a folder this lock created for it is removed too when left empty.
    """

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.path = lock_path(output)
        self._fd: int | None = None
        self._made_dirs: list[Path] = []

    def acquire(self) -> OutputLock:
        missing = []
        parent = self.path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the folder of --output_file {self.output}: {exc.strerror}") from None
        self._made_dirs = missing
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self._remove_made_dirs()
                raise RunError(f"cannot create the lock {self.path}: {exc.strerror}; choose another --output_file") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunError(
                    f"{self.output} is being written by another run ({holder}); wait for it to finish, stop it, "
                    "or choose another --output_file"
                ) from None
            # the holder before us may have removed the file between our open and our lock
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(redacted_argv())}  # fmt: skip
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
        self._remove_made_dirs()

    def _remove_made_dirs(self) -> None:
        for folder in self._made_dirs:  # innermost first; only folders left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made_dirs = []

    def keep_folders(self) -> None:
        """The run wrote its output: the folders it made stay."""
        self._made_dirs = []

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {data.get('pid')} on {data.get('host')} since {data.get('started')}: {data.get('command', '')}"[:300]
    except (OSError, ValueError):
        return "another process"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False
