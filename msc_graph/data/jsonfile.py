"""Reading a list of records from a JSON or JSONL file, with errors that name the file and the fix.

Input files are bounded, so that reading them and carrying their texts through every request keeps
the runner's memory bounded (``docs/reliability.md``): a file over :data:`MAX_INPUT_FILE_BYTES` is
refused before it is read, and a record with a text over :data:`MAX_FIELD_CHARS` characters (a
persona, a preference, a problem, a solution) is refused at start with one line naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The most characters one text of an input record may hold (about 25,000 tokens: more than the
#: agent's whole context budget, 16,384 tokens; a longer text is a mistake, not a problem to pose).
MAX_FIELD_CHARS = 100_000
#: The largest profile, dataset or dataset-cache file read (parsing takes a few times its size).
MAX_INPUT_FILE_BYTES = 256 * 2**20


def oversized_text(value: Any, limit: int = MAX_FIELD_CHARS, where: str = "") -> tuple[str, int] | None:
    """Where (``persona``, ``preferences.2``) the first text longer than ``limit`` is, and its length."""
    if isinstance(value, str):
        return (where or "text", len(value)) if len(value) > limit else None
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = oversized_text(child, limit, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def check_input_file(path: Path, what: str, error: type[Exception]) -> None:
    """Refuse a file too large to read safely, before reading it."""
    size = path.stat().st_size
    if size > MAX_INPUT_FILE_BYTES:
        raise error(f"{what} {path} is {size / 2**20:,.0f} MB, more than the {MAX_INPUT_FILE_BYTES // 2**20} MB an input "
                    "file may be; split it or keep only the records the run uses")  # fmt: skip


def check_record_texts(items: list, path: Path | str, what: str, error: type[Exception], *, entry: str = "entry") -> None:
    """Refuse a record holding a text over :data:`MAX_FIELD_CHARS` characters (one line naming it)."""
    for idx, item in enumerate(items):
        found = oversized_text(item)
        if found:
            raise error(f"{what} {path}: {entry} {idx} ({found[0]}) holds {found[1]:,} characters, more than the "
                        f"{MAX_FIELD_CHARS:,} an input text may hold (every request would carry it); shorten it")  # fmt: skip


def read_record_list(path: str | Path, *, what: str, fields: str, wrapper_key: str, missing_hint: str, error: type[Exception]) -> list:
    """The records of a ``.json`` list (or ``{wrapper_key: [...]}``) or a ``.jsonl`` file.

    Raises ``error`` for a missing, empty or malformed file, or one that holds no records.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise error(f"{what} {path} does not exist: {missing_hint}")
    try:
        check_input_file(path, what, error)
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}): {missing_hint}") from None
    if not text.strip():
        raise error(f"{what} {path} is empty: it must hold a list of {fields} records")
    try:
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    if isinstance(items, dict) and isinstance(items.get(wrapper_key), list):
        items = items[wrapper_key]
    if not isinstance(items, list) or not items:
        raise error(f"{what} {path} must hold a non-empty JSON list of {fields} records")
    check_record_texts(items, path, what, error)
    return items
