"""Export records in the published per-user format, for analysis scripts written for it.

One JSON line per user: the profile fields (``i``, ``persona``, ``preferences``, ``categories``),
``generated_conversations`` (per session: ``sample`` with every field of the dataset's item,
``conversation``, ``full_conversation_log``, and ``agent_notes`` for memory runs) and
``evaluation`` (``evaluated_conversations`` with each session's ``evaluation``,
``average_accuracy``, ``average_conversation_length``). Failed sessions are left out of
``generated_conversations``, as the published code does, and listed under ``failed_sessions`` so
nothing disappears silently. A user without a single finished session has no averages, which the
published aggregation cannot read: such users are left out of the file and counted in the result.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from msc_graph.memory.notes import notes_as_text
from msc_graph.results.files import manifest_path


def _log_entry(turn: dict) -> dict:
    skip = {"role", "turn", "raw", "usage"}
    return {k: v for k, v in turn.items() if k not in skip}


class ExportError(ValueError):
    """The export would write over one of its inputs; the message names it."""


def check_export_target(path: str | Path, inputs: list[str | Path]) -> None:
    """Refuse an export path that is one of the inputs, or a file that sits beside one of them."""
    target = Path(path).resolve()
    for given in inputs:
        source = Path(given).resolve()
        protected = {source, manifest_path(source), source.with_name(source.name + ".lock")}
        if target in protected:
            raise ExportError(f"{path} is an input of this command ({given}); write the export to another path")


def published_user_lines(records: list[dict]) -> list[dict]:
    by_user: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_user[r["user_id"]].append(r)
    lines = []
    for uid in sorted(by_user):
        recs = sorted(by_user[uid], key=lambda r: r["session_index"])
        first = recs[0]
        conversations, failed = [], []
        for r in recs:
            if r.get("failure"):
                failed.append({"session_index": r["session_index"], **r["failure"]})
                continue
            conv = {
                "sample": {"problem": r["problem"], "solution": r["solution"], **(r.get("problem_fields") or {})},
                "conversation": r["transcript"],
                "full_conversation_log": [_log_entry(t) for t in r["turns"]],
            }
            if "notes_after" in r:
                after = r["notes_after"]
                conv["agent_notes"] = {"agent_notes": after if isinstance(after, str) else notes_as_text(after or [])}
            conv["evaluation"] = {
                "final_answer": r["draft_answer"],
                "accuracy": {k: v for k, v in (r.get("verdict") or {}).items() if k != "raw"},
                "conversation_length": r["length"],
            }
            conversations.append(conv)
        n = len(conversations)
        if not n:
            continue
        lines.append(
            {
                "i": uid,
                "persona": first["persona"],
                "preferences": first["preferences"],
                "categories": first.get("categories", []),
                "generated_conversations": conversations,
                "evaluation": {
                    "evaluated_conversations": conversations,
                    "average_accuracy": sum(float(c["evaluation"]["accuracy"].get("accuracy", 0)) for c in conversations) / n,
                    "average_conversation_length": sum(c["evaluation"]["conversation_length"] for c in conversations) / n,
                },
                "failed_sessions": failed,
            }
        )
    return lines


def export_published(records: list[dict], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = published_user_lines(records)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return len(lines)
