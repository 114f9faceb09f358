"""Training signal for reflection models, from memory-run records (beyond the published code).

One JSON line per session: the notes before, the transcript, the notes after, and reward signals:
which preferences the user enforced in the session, whether the new notes cover each of them
(embedding similarity between the preference and its closest note, with the offline model), and
the user effort of the user's next session (lower is better: the notes helped).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from msc_graph.memory.embeddings import make_embedding
from msc_graph.memory.notes import note_text
from msc_graph.metrics import enforced_preferences

DEFAULT_COVER_THRESHOLD = 0.86


def memory_texts(memory) -> list[str]:
    """The texts a design's memory holds: one per note, or the document of the published design."""
    if isinstance(memory, str):
        return [memory] if memory.strip() else []
    return [note_text(n) if isinstance(n, dict) else str(n) for n in memory or [] if n]


def reflection_examples(records: list[dict], threshold: float = DEFAULT_COVER_THRESHOLD, embedding=None) -> list[dict]:
    emb = embedding or make_embedding()
    by_user: dict[int, dict[int, dict]] = defaultdict(dict)
    for r in records:
        by_user[r["user_id"]][r["session_index"]] = r
    out = []
    for uid in sorted(by_user):
        sessions = by_user[uid]
        for k in sorted(sessions):
            r = sessions[k]
            if "notes_after" not in r:
                raise ValueError(f"record user {uid} session {k} has no notes: export needs a memory run's results")
            enforced = enforced_preferences(r)
            coverage = []
            notes_text = memory_texts(r["notes_after"])
            if enforced and notes_text:
                note_vecs = np.asarray(emb(notes_text))
                pref_vecs = np.asarray(emb.embed_query([r["preferences"][i] for i in enforced]))
                sims = pref_vecs @ note_vecs.T / (
                    np.linalg.norm(pref_vecs, axis=1, keepdims=True) * np.linalg.norm(note_vecs, axis=1) + 1e-9
                )
            for row, i in enumerate(enforced):
                if notes_text:
                    best = int(np.argmax(sims[row]))
                    score = float(sims[row][best])
                    coverage.append({"preference": i, "covered": score >= threshold, "similarity": round(score, 4),
                                     "closest_note": best})  # fmt: skip
                else:
                    coverage.append({"preference": i, "covered": False, "similarity": None, "closest_note": None})
            nxt = sessions.get(k + 1)
            out.append(
                {
                    "user_id": uid,
                    "session_index": k,
                    "preferences": r["preferences"],
                    "notes_before": r["notes_before"],
                    "transcript": r["transcript"],
                    "notes_after": r["notes_after"],
                    "reflection_failed": bool((r.get("reflection") or {}).get("error")),
                    "session_failed": bool(r.get("failure")),
                    "rewards": {
                        "enforced_preferences": enforced,
                        "coverage": coverage,
                        "coverage_rate": (sum(c["covered"] for c in coverage) / len(coverage)) if coverage else None,
                        "user_effort": r["user_effort"],
                        "next_session_user_effort": None if nxt is None or nxt.get("failure") else nxt["user_effort"],
                    },
                }
            )
    return out


def export_reflections(records: list[dict], path: str | Path, threshold: float = DEFAULT_COVER_THRESHOLD,
                       split: str = "unknown") -> int:
    """Write the rows; each carries ``split`` (from the runs' manifests), so training can refuse test sessions."""
    rows = [{**row, "split": split} for row in reflection_examples(records, threshold)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
