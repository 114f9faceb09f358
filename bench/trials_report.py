"""How long does the report take for a run with repeated trials (issue 26: under 30 s for 1,000
sessions x 3 trials)?

Runs a real benchmark against the scripted server (its own process, no latency): USERS users x
SESSIONS problems (a file of generated problems) x TRIALS trials, no memory, through
``runners/batch.py``; then times the whole report (``load_results`` + ``build_report``: every table,
figure, the trial and simulator sections, both pages) in this process, ROUNDS times.

Usage: ``nice python bench/trials_report.py [--users 50 --sessions 20 --trials 3 --rounds 2] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msc_graph.results import read_records  # noqa: E402
from msc_graph.results.report import build_report  # noqa: E402
from msc_graph.results.settings import load_results  # noqa: E402
from tests.helpers import cli_args, start_scripted_server  # noqa: E402


def run_batch(url: str, folder: Path, users: int, sessions: int, trials: int) -> tuple[Path, float]:
    problems = folder / "problems.json"
    problems.write_text(json.dumps([{"problem": f"What is {i} + {i}?", "solution": str(2 * i)} for i in range(sessions)]))
    out = folder / "results.jsonl"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "runners" / "batch.py"), "--dataset", str(problems), "--eval_size", str(sessions),
         "--users", str(users), "--trials", str(trials), "--concurrency", "200", *cli_args(url),
         "--output_file", str(out), "--no-progress", "--skip-preflight"],
        check=True, cwd=folder,
    )  # fmt: skip
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default="", help="write the results here")
    args = ap.parse_args()
    server = start_scripted_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out, run_s = run_batch(server.url, Path(tmp), args.users, args.sessions, args.trials)
            records = read_records(out)
            times = []
            for r in range(args.rounds):
                t0 = time.perf_counter()
                tables = build_report(load_results([out]), Path(tmp) / f"report{r}")
                times.append(round(time.perf_counter() - t0, 2))
            result = {
                "users": args.users, "sessions": args.sessions, "trials": args.trials, "records": len(records),
                "failed": sum(1 for x in records if x.get("failure")), "run_wall_s": round(run_s, 1),
                "report_wall_s": times, "flipping_sessions": len(tables["flips"]),
                "pass_k": [(r["k"], r["pass^k"], r["pass@k"]) for r in tables["pass_k"]],
                "simulator": [{k: v for k, v in r.items() if not k.startswith("enforce_rate")} for r in tables["simulator"]],
            }  # fmt: skip
    finally:
        server.stop()
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
