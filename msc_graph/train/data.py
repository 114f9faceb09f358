"""Training examples for reflection: one per finished session of a memory run on the train split.

Each example's prompt is what the notes designs send after that session
(``memory.designs.notes.reflection_messages``: the notes before and the transcript), so training
and the benchmark see the same bytes. Its target, for the coverage reward, is every preference the
user enforced in this session or an earlier one: what the notes should hold by now (never a
preference the user did not express: notes must not guess).

Sources: result files of ``agent_with_memory`` runs (their manifest must say ``--split train``) or
the JSONL that ``export_reflections.py`` writes from such runs (each row carries its split).
Test-split sessions are refused: training on them would leak the evaluation problems.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

from msc_graph.memory.designs.notes import reflection_messages
from msc_graph.metrics import enforced_preferences
from msc_graph.results.files import ResultsError, read_manifest, read_records


class TrainingDataError(ValueError):
    """The training data cannot be used; the message names the file and what to do."""


class ReflectionExample(BaseModel):
    """One reflection to train on: the prompt the design sends and what the notes should cover."""

    user_id: int | str
    session_index: int
    prompt: list[dict]
    preferences: list[str]
    #: 0-based indices of the preferences enforced in this session or earlier ones of this user.
    target: list[int]


def _rows_of_results(path: Path) -> list[dict]:
    manifest = read_manifest(path)
    if manifest is None:
        raise TrainingDataError(f"{path}: no manifest beside it, so its split is unknown; train on results of a "
                                "run made with --split train (its manifest says so)")  # fmt: skip
    split = (manifest.get("dataset") or {}).get("split", "test")
    if split != "train":
        raise TrainingDataError(f"{path}: a run on the {split} split; train only on runs made with --split train")
    rows = []
    for r in read_records(path):
        if r.get("failure") or not isinstance(r.get("notes_before"), list):
            continue  # a failed session, or a design whose memory is not a list of notes
        rows.append({"user_id": r["user_id"], "session_index": r["session_index"], "preferences": r["preferences"],
                     "notes_before": r["notes_before"], "transcript": r["transcript"],
                     "enforced": enforced_preferences(r)})  # fmt: skip
    return rows


def _rows_of_export(path: Path, lines: list[str]) -> list[dict]:
    rows = []
    for n, line in enumerate(lines, start=1):
        row = json.loads(line)
        if row.get("split") != "train":
            raise TrainingDataError(f"{path}:{n}: a session of the {row.get('split', 'unknown')} split; export "
                                    "the results of a --split train run (export_reflections.py stamps the split)")  # fmt: skip
        if row.get("session_failed") or not isinstance(row.get("notes_before"), list):
            continue
        rows.append({"user_id": row["user_id"], "session_index": row["session_index"],
                     "preferences": row["preferences"], "notes_before": row["notes_before"],
                     "transcript": row["transcript"], "enforced": row["rewards"]["enforced_preferences"]})  # fmt: skip
    return rows


def read_rows(path: str | Path) -> list[dict]:
    """The sessions in one file: an export (rows with ``rewards``) or a results file."""
    path = Path(path)
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        first = json.loads(lines[0]) if lines else {}
    except (OSError, ValueError) as exc:
        raise TrainingDataError(f"{path}: not a readable JSONL file ({exc})") from None
    try:
        return _rows_of_export(path, lines) if "rewards" in first else _rows_of_results(path)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, TrainingDataError | ResultsError):
            raise
        raise TrainingDataError(f"{path}: not results or an export of a memory run ({exc!r})") from None


def build_examples(rows: list[dict], min_target: int = 1) -> list[ReflectionExample]:
    """Examples in (user, session) order; sessions whose target has fewer than ``min_target``
    preferences are left out (nothing to cover: no signal for the coverage reward)."""
    by_user: dict = defaultdict(dict)
    for r in rows:
        by_user[r["user_id"]][r["session_index"]] = r
    out = []
    for uid in sorted(by_user, key=str):
        seen: set[int] = set()
        for k in sorted(by_user[uid]):
            r = by_user[uid][k]
            seen |= set(r["enforced"])
            if len(seen) < min_target:
                continue
            out.append(ReflectionExample(user_id=uid, session_index=k, prompt=reflection_messages(r["notes_before"], r["transcript"]),
                                         preferences=list(r["preferences"]), target=sorted(seen)))  # fmt: skip
    return out


def load_examples(paths: list[str], min_target: int = 1) -> list[ReflectionExample]:
    rows = [row for p in paths for row in read_rows(p)]
    examples = build_examples(rows, min_target)
    if not examples:
        raise TrainingDataError(f"no usable sessions in {', '.join(paths)}: none finished with a preference "
                                f"enforced (at least {min_target}); run more users or sessions on the train split")  # fmt: skip
    return examples
