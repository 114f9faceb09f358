"""The transcript viewer inside ``report.html``: the data it reads, embedded in the page (no network).

The page carries a small index of every session (what the list and the filters need) as JSON, and
the sessions themselves in gzip-compressed blocks of :data:`CHUNK` sessions (base64), which the page
opens with the browser's ``DecompressionStream`` only when a session of that block is opened. So a
report over tens of thousands of sessions opens at once; the page's script is in
:mod:`msc_graph.results.viewer_page`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from msc_graph.metrics import enforced
from msc_graph.results.settings import Setting

CHUNK = 200
Which = Literal["all", "failed", "none"]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _outcome(r: dict) -> str:
    if r.get("failure") or r.get("task_success") is None:
        return "failed"
    return "solved" if float(r["task_success"]) > 0 else "not solved"


def index_entry(i: int, r: dict, setting_pos: dict[str, int], chunk: int) -> list:
    """[id, dataset, setting, user, session (from 1), problem, outcome, TS, UE, Len, ended by, chunk]."""
    return [i, r.get("dataset", "?"), setting_pos.get(r.get("_setting", ""), -1), r["user_id"], int(r["session_index"]) + 1,
            r.get("problem_id"), _outcome(r), r.get("task_success"), r.get("user_effort"), r.get("length"),
            r.get("ended_by") or "", chunk]  # fmt: skip


def _call(turn: dict) -> dict:
    """What a message's model call left: its raw reply and its tokens and latency (records since the
    per-turn ``usage`` was added; older records have the raw reply only)."""
    out: dict = {}
    if turn.get("raw") not in (None, ""):
        out["raw"] = _text(turn["raw"])
    if isinstance(turn.get("usage"), dict):
        out["usage"] = turn["usage"]
    return out


def _conversation(r: dict) -> list[dict]:
    """The messages in order; a user message carries its turn's enforcement, checks and draft answer,
    an agent message the notes recalled for the user message it answers; each its call (raw reply,
    tokens, latency)."""
    user_turns = [t for t in r.get("turns") or [] if t.get("role") == "user"]
    agent_turns = [t for t in r.get("turns") or [] if t.get("role") == "agent"]
    recalled = {int(x.get("user_turn", 0)): x.get("notes") for x in r.get("retrieved") or [] if isinstance(x, dict)}
    messages = r.get("transcript") or [
        {"role": "user" if t.get("role") == "user" else "assistant", "content": t.get("response")} for t in r.get("turns") or []
    ]
    out, users_seen, agents_seen = [], 0, 0
    for m in messages:
        if m.get("role") == "user":
            turn = user_turns[users_seen] if users_seen < len(user_turns) else {}
            users_seen += 1
            checks = {k: _text(v) for k, v in turn.items() if k.startswith("preference_") and k.endswith("_satisfied")}
            out.append({"role": "user", "text": _text(m.get("content")), "turn": users_seen, "enforced": enforced(turn),
                        "checks": checks, "draft": _text(turn.get("draft_answer")) if "draft_answer" in turn else None,
                        **_call(turn)})  # fmt: skip
        else:
            turn = agent_turns[agents_seen] if agents_seen < len(agent_turns) else {}
            agents_seen += 1
            entry: dict = {"role": "agent", "text": _text(m.get("content")), **_call(turn)}
            if users_seen and users_seen in recalled:
                entry["recalled"] = recalled[users_seen]
            out.append(entry)
    return out


def session_detail(r: dict) -> dict:
    verdict = {k: v for k, v in (r.get("verdict") or {}).items() if k != "raw"}
    prefs = r.get("preferences") or []
    cats = list(r.get("categories") or []) + [""] * len(prefs)
    detail = {
        "problem": _text(r.get("problem")), "solution": _text(r.get("solution")), "persona": _text(r.get("persona")),
        "preferences": [[cats[i], p] for i, p in enumerate(prefs)], "conversation": _conversation(r),
        "draft": _text(r.get("draft_answer")), "verdict": verdict, "failure": r.get("failure"),
        "ended_by": r.get("ended_by"), "usage": r.get("usage") or {}, "judge_raw": _text((r.get("verdict") or {}).get("raw")),
    }  # fmt: skip
    if "notes_before" in r or "notes_after" in r:
        detail.update(notes_before=r.get("notes_before"), notes_after=r.get("notes_after"),
                      reflection={k: v for k, v in (r.get("reflection") or {}).items() if k != "raw"})  # fmt: skip
    return detail


def _pack(details: list[dict]) -> str:
    blob = json.dumps(details, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return base64.b64encode(gzip.compress(blob, compresslevel=6, mtime=0)).decode("ascii")


def viewer_data(records: list[dict], settings: dict[str, Setting], which: Which = "all") -> tuple[dict, list[str]]:
    """The index (settings, datasets, sessions) and the packed blocks of session details."""
    chosen = [] if which == "none" else [r for r in records if which == "all" or _outcome(r) == "failed"]
    chosen.sort(key=lambda r: (settings[r["_setting"]].label if r.get("_setting") in settings else "",
                               str(r.get("dataset")), r["user_id"], r["session_index"]))  # fmt: skip
    order = sorted(settings.values(), key=lambda s: s.label)
    pos = {s.id: i for i, s in enumerate(order)}
    index = {"settings": [s.label for s in order], "datasets": sorted({str(r.get("dataset")) for r in chosen}),
             "users": sorted({r["user_id"] for r in chosen}), "total": len(records), "chunk": CHUNK,
             "sessions": [index_entry(i, r, pos, i // CHUNK) for i, r in enumerate(chosen)]}  # fmt: skip
    blocks = ([session_detail(r) for r in chosen[i : i + CHUNK]] for i in range(0, len(chosen), CHUNK))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # zlib compresses without the GIL
        chunks = list(pool.map(_pack, blocks))
    return index, chunks


def script_json(payload: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can close it)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_html(index: dict, chunks: list[str]) -> str:
    from msc_graph.results.viewer_page import VIEWER_HTML, VIEWER_JS

    blocks = "".join(f'<script type="application/gzip-base64" id="msc-chunk-{i}">{c}</script>' for i, c in enumerate(chunks))
    return (VIEWER_HTML + f'<script type="application/json" id="msc-index">{script_json(index)}</script>'
            + blocks + f"<script>{VIEWER_JS}</script>")  # fmt: skip
