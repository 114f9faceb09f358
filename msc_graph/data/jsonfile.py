"""Reading a list of records from a JSON or JSONL file, with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path


def read_record_list(path: str | Path, *, what: str, fields: str, wrapper_key: str, missing_hint: str, error: type[Exception]) -> list:
    """The records of a ``.json`` list (or ``{wrapper_key: [...]}``) or a ``.jsonl`` file.

    Raises ``error`` for a missing, empty or malformed file, or one that holds no records.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise error(f"{what} {path} does not exist: {missing_hint}")
    try:
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
    return items
