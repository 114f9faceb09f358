"""Load under faults: many users through the real ``runners/batch.py`` against the fault server.

Starts ``msc_graph.testing.fault_server`` with a total fault rate spread over its twelve fault
kinds (HTTP 500/503/429, hangs past the client timeout, dropped connections, non-JSON bodies and
contents, truncated JSON, missing keys, wrong types, empty and endless replies), then runs
``runners/batch.py`` as a user would (its own process) and reports: wall time, sessions recorded,
failures by stage, faults injected by kind, and the runner process's peak RSS. It checks that
every session has exactly one record.

Usage: ``python bench/fault_load.py [--users 1000 --sessions 2 --fault-rate 0.05 --memory]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from flags import workload_parser

from msc_graph.results import read_records

ROOT = Path(__file__).resolve().parent.parent

# Runs batch.py's main in this child and reports its own peak RSS on the way out, and that of its
# memory store process (if any).
CHILD = (
    "import resource, runpy, sys\n"
    "sys.argv = ['runners/batch.py'] + sys.argv[1:]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_path('runners/batch.py', run_name='__main__')\n"
    "except SystemExit as exc:\n"
    "    code = exc.code or 0\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "from msc_graph.memory.store_process import wait_for_store_processes\n"
    "wait_for_store_processes()\n"
    "print('STORE_PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def main() -> None:
    ap = workload_parser(__doc__, users=1000, sessions=2, latency=0.05, concurrency=200)
    ap.add_argument("--fault-rate", type=float, default=0.05, help="share of completions that fail (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=5.0, help="client timeout per request, s (default: %(default)s)")
    ap.add_argument("--memory", action="store_true", help="agent_with_memory (retrieval) instead of no memory")
    args = ap.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "msc_graph.testing.fault_server", "--port", "0", "--fault-rate", str(args.fault_rate),
         "--latency", str(args.latency), "--hang-s", str(4 * args.timeout), "--seed", "11"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1"  # type: ignore[union-attr]
    folder = Path(tempfile.mkdtemp(prefix="msc_fault_load_"))
    out = folder / "results.jsonl"
    roles = []
    for flag in ("user", "collaborator", "judge"):
        roles += [f"--{flag}_api_base", url, f"--{flag}_model_name", "scripted"]
    command = [
        sys.executable, "-c", CHILD, "--dataset", "demo", "--eval_size", str(args.sessions), "--users", str(args.users),
        "--concurrency", str(args.concurrency), "--timeout", str(args.timeout), "--output_file", str(out),
        "--no-progress", *roles,
        *(["--experiment_type", "agent_with_memory"] if args.memory else []),
    ]  # fmt: skip
    try:
        start = time.monotonic()
        run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.monotonic() - start
        faults = httpx.get(url.removesuffix("/v1") + "/faults", timeout=10).json()
    finally:
        server.terminate()
    if run.returncode != 0:
        sys.exit(f"runner failed ({run.returncode}):\n{run.stderr[-3000:]}")
    rss_kb = next(int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    store_kb = next(int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("STORE_PEAK_RSS_KB"))
    records = read_records(out)
    keys = Counter((r["user_id"], r["session_index"]) for r in records)
    expected = args.users * args.sessions
    assert len(keys) == expected and max(keys.values()) == 1, "missing or duplicate records"
    failures = Counter(r["failure"]["stage"] for r in records if r["failure"])
    result = {
        "setting": "agent_with_memory (retrieval)" if args.memory else "agent_without_memory",
        "users": args.users,
        "sessions": len(records),
        "wall_s": round(wall, 1),
        "completions": faults["completions"],
        "faults_injected": sum(faults["injected"].values()),
        "faults_by_kind": faults["injected"],
        "failed_sessions": sum(failures.values()),
        "failures_by_stage": dict(failures),
        "peak_rss_mb": round(rss_kb / 1024),
        # (RUSAGE_CHILDREN: the largest child the runner reaped; only the store process matters here)
        "store_process_peak_rss_mb": round(store_kb / 1024) if args.memory else None,
    }
    print(json.dumps(result, indent=2))
    print(
        f"| {result['setting']} | {args.users} x {args.sessions} | {args.fault_rate:.0%} | {result['completions']} | "
        f"{result['faults_injected']} | {result['failed_sessions']} | {result['wall_s']} | {result['peak_rss_mb']} | "
        f"{result['store_process_peak_rss_mb'] or '-'} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), **result}, indent=2))


if __name__ == "__main__":
    main()
