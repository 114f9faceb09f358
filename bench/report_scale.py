"""How long does the report take at the published scale, and does its page open without stalling?

Writes synthetic result files (with manifests) of realistic size: SETTINGS settings (no memory, and
retrieval memory) x DATASETS datasets x USERS users x SESSIONS sessions, each session 2-10 user
turns of generated text (agent replies ~1,200 characters, user messages ~250, the user's raw JSON
kept as the runner keeps it), usage per role, and for memory runs notes before/after and what was
recalled per turn. Then it times ``runners/report.py`` (in this process: load, tables, figures,
pages) and opens ``report.html`` in headless Chromium over the DevTools pipe: time to the load event
and to the viewer's list, a filter, and opening a transcript (decompressing its block).

Usage: ``python bench/report_scale.py [--users 50 --sessions 20 --datasets 5 --settings 2] [--out DIR]``
"""

from __future__ import annotations

import json
import random
import resource
import tempfile
import time
from pathlib import Path

from flags import workload_parser

from msc_graph.results.files import RecordWriter, manifest_path, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("the a of to and in is it that for on with as this answer step value problem first then so we "
         "compute result equation check number total case each term sum factor prime angle area rate").split()  # fmt: skip
CATEGORIES = ["directness", "politeness", "proactivity", "guidance", "formatting", "analyticality"]


def text(rng: random.Random, chars: int) -> str:
    out, n = [], 0
    while n < chars:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out).capitalize() + "."


#: As in the published profiles: 20 preferences in 6 categories, three per user.
POOL = [(CATEGORIES[i % len(CATEGORIES)], text(random.Random(i), 150)) for i in range(20)]


def session(rng: random.Random, memory: bool, dataset: str, user: int, k: int, skill: float) -> dict:
    learned = memory and k > 0
    p_enforce = 0.25 if learned else 0.45
    n_user = rng.randint(2, 10)
    turns, transcript = [], [{"role": "assistant", "content": "How can I help you?"}]
    ue, draft = 0, "I don't know"
    for t in range(1, n_user + 1):
        enf = t > 1 and rng.random() < p_enforce
        ue += enf
        if rng.random() < 0.4:
            draft = text(rng, 60)
        reply = {"preference_1_satisfied": "No: too long." if enf else "yes", "preference_2_satisfied": "yes",
                 "preference_3_satisfied": "yes", "enforce_preferences": enf, "reasoning": text(rng, 120),
                 "draft_answer": draft, "should_terminate": t == n_user, "response": text(rng, 250)}  # fmt: skip
        turns.append({"role": "user", "turn": t, **reply, "raw": json.dumps(reply)})
        transcript.append({"role": "user", "content": reply["response"]})
        if t < n_user:
            agent = text(rng, 1200)
            turns.append({"role": "agent", "turn": t, "response": agent, "raw": agent})
            transcript.append({"role": "assistant", "content": agent})
    ts = int(rng.random() < skill + (0.05 if learned else 0))
    timeout = n_user == 10 and rng.random() < 0.5
    rec = {
        "dataset": dataset, "experiment_type": "agent_with_memory" if memory else "agent_without_memory",
        "memory": "retrieval" if memory else "none", "agent_model": "bench-agent", "user_model": "bench-user",
        "user_id": user, "session_index": k, "problem_id": k, "problem": text(rng, 400), "solution": text(rng, 600),
        "persona": text(rng, 100), "preferences": [POOL[(user * 7 + 3 * i) % 20][1] for i in range(3)],
        "categories": [POOL[(user * 7 + 3 * i) % 20][0] for i in range(3)],
        "transcript": transcript, "turns": turns, "draft_answer": draft,
        "verdict": {"reasoning": text(rng, 150), "accuracy": ts, "raw": "{}"},
        "ended_by": "max_turns" if timeout else "terminate", "task_success": ts, "user_effort": ue,
        "length": len(transcript) + 1,
        "usage": {role: {"calls": n_user, "prompt_tokens": 900 * n_user, "completion_tokens": c * n_user,
                         "cached_prompt_tokens": 600 * n_user, "latency_s": 0.8 * n_user}
                  for role, c in (("user", 70), ("agent", 300), ("judge", 40))},
        "timing": {"start": "2026-11-25T00:00:00+00:00", "wall_s": 30.0 + n_user}, "failure": None,
    }  # fmt: skip
    if rng.random() < 0.01:
        rec.update(task_success=None, failure={"stage": "user", "reason": "unparseable reply", "kind": "content"})
    if memory:
        notes = [{"preference": text(rng, 60), "evidence": text(rng, 60), "how_to_satisfy": text(rng, 80)} for _ in range(3)]
        rec.update(notes_before=notes[: min(3, k)], notes_after=notes, reflection={"reasoning": text(rng, 100)},
                   retrieved=[{"user_turn": t, "notes": notes[:2]} for t in range(1, n_user)])  # fmt: skip
    return rec


def write_files(folder: Path, settings: int, datasets: int, users: int, sessions: int) -> list[Path]:
    paths = []
    for s in range(settings):
        memory = s % 2 == 1
        for d in range(datasets):
            dataset = f"dataset{d + 1}"
            rng = random.Random(f"{s}-{d}")
            path = folder / f"{dataset}_{'memory' if memory else 'none'}{s // 2 or ''}.jsonl"
            rs = {"prompts": "bench", "dataset": dataset, "dataset_seed": 42, "max_turns": 10 + s // 2,
                  "memory": "retrieval" if memory else "none", "agent": {"model": "bench-agent"},
                  "user": {"model": "bench-user"}, "judge": {"model": "bench-judge"}}  # fmt: skip
            key = f"{s}-{d}"
            with RecordWriter(path) as w:
                for u in range(users):
                    skill = random.Random(u).uniform(0.2, 0.7)
                    for k in range(sessions):
                        w.write({**session(rng, memory, dataset, u, k, skill), "settings_hash": key})
            write_json_atomic(manifest_path(path), {"settings_hash": key, "result_settings": rs})
            paths.append(path)
    return paths


def open_page(page_path: Path, profile: Path) -> dict:
    from tests.integration.chromium import Chromium

    with Chromium(profile) as page:
        t0 = time.perf_counter()
        page.open(page_path.as_uri(), timeout=300)
        loaded = time.perf_counter() - t0
        page.wait_for("document.body.dataset.viewer === 'ready'", timeout=300)
        ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        page.select("#f-outcome", "enforced")
        page.wait_for("document.querySelectorAll('#session-rows tr').length > 0")
        filtered = time.perf_counter() - t1
        t2 = time.perf_counter()
        page.click("#session-rows tr.session-row")
        page.wait_for("document.getElementById('transcript').dataset.session !== undefined", timeout=120)
        opened = time.perf_counter() - t2
        heap = page.eval("performance.memory ? performance.memory.usedJSHeapSize : null")
    return {"load_event_s": round(loaded, 2), "viewer_ready_s": round(ready, 2), "filter_s": round(filtered, 3),
            "open_transcript_s": round(opened, 3), "js_heap_mb": round(heap / 2**20, 1) if heap else None}  # fmt: skip


def main() -> None:
    ap = workload_parser(__doc__, users=50, sessions=20)
    ap.add_argument("--datasets", type=int, default=5, help="datasets (default: %(default)s)")
    ap.add_argument("--settings", type=int, default=2, help="settings: none, memory, none, ... (default: %(default)s)")
    ap.add_argument("--out", default=None, help="keep the files and the report here (default: a temporary folder)")
    ap.add_argument("--no-browser", action="store_true", help="skip opening the page in Chromium")
    args = ap.parse_args()
    folder = Path(args.out or tempfile.mkdtemp(prefix="msc_report_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_files(folder, args.settings, args.datasets, args.users, args.sessions)
    records = args.settings * args.datasets * args.users * args.sessions
    from msc_graph.results.report import build_report
    from msc_graph.results.settings import load_results

    t0 = time.perf_counter()
    loaded = load_results(paths)
    t_load = time.perf_counter() - t0
    build_report(loaded, folder / "report")
    total = time.perf_counter() - t0
    page = folder / "report" / "report.html"
    result = {"records": records, "input_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 1),
              "load_s": round(t_load, 1), "report_s": round(total, 1), "html_mb": round(page.stat().st_size / 2**20, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # fmt: skip
    if not args.no_browser:
        result.update(open_page(page, folder / "chromium-profile"))
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
