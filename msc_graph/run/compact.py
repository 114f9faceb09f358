"""Compacting a results file when a run finishes cleanly: superseded attempts are dropped.

A results file is append-only while a run writes it: a failed session that a rerun runs again
leaves its earlier record behind, superseded by the later one (``resume.py``: the last record of a
key counts). Left alone, every rerun of a flaky setup makes the file longer. On a clean finish,
with the output lock still held, :func:`compact_results` rewrites the file with only the records
that count, byte for byte as they were written and in their order:

- what is kept is decided by :func:`superseded_lines`, the one rule (``records.latest_by_key``);
- the new file is written beside the old one, flushed to disk, then renamed over it (``os.replace``
  is atomic): a crash at any moment leaves either the old file or the new one, never a mix;
- the file is read line by line (one record in memory at a time), and it is left as it is when it
  changed while being read, when a line is not JSON, or when the copy cannot be written.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from msc_graph.records import latest_by_key, record_key


def superseded_lines(path: Path) -> tuple[set[int], int]:
    """Line numbers of ``path`` whose record a later record of the same key supersedes, and the line count.

    The rule is the one resume, merge, the report and rescore read by (``records.latest_by_key``
    over ``records.record_key``); a line without a key is kept. Only each line's key is held.
    """
    keyed: list[dict] = []  # each record's key and line number
    lines = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh):
            lines += 1
            if not line.strip():
                continue
            record = json.loads(line)  # a line that is not JSON: ValueError, and nothing is rewritten
            if isinstance(record, dict) and "user_id" in record and "session_index" in record:
                keyed.append({**record_key(record)._asdict(), "line": number})
    counting = {k["line"] for k in latest_by_key(keyed).values()}
    dropped = {k["line"] for k in keyed} - counting
    return dropped, lines


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def compact_results(path: str | Path) -> int:
    """Drop the superseded records of ``path`` (see the module's notes); the number dropped.

    Call it only while holding the output lock. Raises ``OSError``/``ValueError`` and leaves the
    file untouched when it cannot be done safely.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    before = _identity(path)
    dropped, _ = superseded_lines(path)
    if not dropped:
        return 0
    tmp = path.with_name(f".{path.name}.compact-{os.getpid()}.tmp")
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for number, line in enumerate(src):
                if number not in dropped and line.strip():
                    dst.write(line if line.endswith(b"\n") else line + b"\n")
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        if _identity(path) != before:  # someone wrote to it after all: keep what is there
            raise OSError(f"{path} changed while it was being compacted")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return len(dropped)
