"""Result files: one JSON line per finished session, appended and flushed; reading with repair.

A record is written with a single ``write`` on an ``O_APPEND`` descriptor, so a killed process
leaves at most one torn final line. ``read_records`` skips a torn last line and ``repair_tail``
cuts it off, so the file is valid JSONL again before anything is appended.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msc_graph.records import SessionRecord


class ResultsError(ValueError):
    """A result file cannot be used as it is; the message says why and what to do."""


def read_records(path: str | Path, *, repair: bool = False) -> list[dict]:
    """All records of a JSONL result file. A torn final line is dropped (and cut off if ``repair``)."""
    path = Path(path)
    if not path.exists():
        return []
    if repair:
        repair_tail(path)
    lines = path.read_bytes().split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    records: list[dict] = []
    for idx, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if idx == len(lines) - 1:  # torn by a kill in the middle of a write
                break
            raise ResultsError(
                f"{path}: line {idx + 1} is not valid JSON and is not the last line; the file was "
                "edited or corrupted. Move it aside, or pass --overwrite to start again"
            ) from None
    return records


def read_session_records(path: str | Path) -> list[SessionRecord]:
    """The records of a result file as typed records (files of earlier versions read as they are);
    a line that is no session record is a ``ResultsError`` naming it."""
    out: list[SessionRecord] = []
    for idx, raw in enumerate(read_records(path)):
        try:
            out.append(SessionRecord.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise ResultsError(f"{path}: record {idx + 1} is not a session record ({where}: {first['msg']}); "
                               "move the file aside or fix that line") from None  # fmt: skip
    return out


def read_result_files(paths: list[str | Path]) -> list[dict]:
    """The records of several result files; a missing or corrupt file raises ``ResultsError``."""
    records: list[dict] = []
    for path in paths:
        if not Path(path).is_file():
            raise ResultsError(f"result file {path} does not exist")
        records += read_records(path)
    return records


def repair_tail(path: str | Path) -> None:
    """Make the end of a result file safe to append to, reading only its last line.

    A torn last line (not valid JSON) is cut off; a complete last record without its newline gets one.
    """
    path = Path(path)
    if not path.exists():
        return
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # find the start of the last line, reading backwards in blocks
        start, block = size, 1 << 16
        while start > 0:
            lo = max(0, start - block)
            fh.seek(lo)
            chunk = fh.read(start - lo)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = lo + cut + 1
                break
            start = lo
        fh.seek(start)
        tail = fh.read()
        try:
            json.loads(tail)
        except json.JSONDecodeError:
            fh.truncate(start)
            return
        fh.seek(0, os.SEEK_END)
        fh.write(b"\n")


_UNSAFE = re.compile(r"[\ud800-\udfff\x00]")


def _clean(value: Any) -> Any:
    """``value`` with lone surrogates and NUL written out as visible escapes, and NaN/inf as None."""
    if isinstance(value, str):
        return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {_clean(k) if isinstance(k, str) else k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode_record(record: dict) -> bytes:
    """One JSON line, valid UTF-8 whatever the models wrote. Text that cannot be encoded (a lone
    surrogate, NUL) is written as a visible escape, a NaN as null, and the record gets
    ``"text_escaped": true``."""
    try:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=str)
        if "\\u0000" not in line:
            return (line + "\n").encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        pass
    clean = {**_clean(record), "text_escaped": True}
    return (json.dumps(clean, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8")


class RecordWriter:
    """Appends records to a JSONL file, one ``os.write`` per record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> None:
        view = memoryview(encode_record(record))
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def manifest_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".manifest.json")


def read_manifest(results: str | Path) -> dict | None:
    """The manifest beside a results file (None when there is none, or it is not a JSON object);
    one that cannot be read is a ``ResultsError`` that names it and the way out."""
    man = manifest_path(results)
    if not man.is_file():
        return None
    try:
        data = json.loads(man.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{man}: not a readable manifest ({exc}); move it aside to use the records alone") from None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
