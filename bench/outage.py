"""What a server outage costs a run: sessions failed, sessions lost or doubled, and the time added.

Starts the fault-injecting scripted server (latency L), runs ``runners/batch.py`` (a memory run,
USERS x SESSIONS, concurrency C) in a child process, and once K records are on disk closes every
connection of the server for OUTAGE seconds (``POST /control/outage``). Then it checks the results
file: every session exactly once, how many failed, and how the run ended.

Usage: ``python bench/outage.py [--users 40 --sessions 3 --outage 120 --latency 0.05]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from flags import workload_parser

from msc_graph.results import manifest_path, read_records

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = workload_parser(__doc__, users=40, sessions=3, latency=0.05, concurrency=50)
    ap.add_argument("--outage", type=float, default=120.0, help="seconds the server is down (default: %(default)s)")
    ap.add_argument("--after", type=int, default=10, help="records written before the outage starts (default: %(default)s)")
    args = ap.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "msc_graph.testing.fault_server", "--port", "0", "--latency",
                               str(args.latency)], stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"  # type: ignore[union-attr]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.jsonl"
            cmd = [sys.executable, "runners/batch.py", "--experiment_type", "agent_with_memory", "--dataset", "demo",
                   "--eval_size", str(args.sessions), "--users", str(args.users), "--api-base", f"{url}/v1",
                   "--model", "scripted", "--concurrency", str(args.concurrency), "--output_file", str(out),
                   "--no-progress"]  # fmt: skip
            start = time.monotonic()
            run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while not (out.exists() and len(out.read_bytes().splitlines()) >= args.after) and run.poll() is None:
                time.sleep(0.02)
            down_at = time.monotonic() - start
            httpx.post(f"{url}/control/outage?seconds={args.outage}", timeout=5)
            _, stderr = run.communicate(timeout=args.outage * 3 + 600)
            wall = time.monotonic() - start
            records = read_records(out)
            manifest = json.loads(manifest_path(out).read_text())
    finally:
        server.terminate()
    keys = [(r["user_id"], r["session_index"]) for r in records]
    row = {
        "users": args.users, "sessions": args.sessions, "outage_s": args.outage, "outage_started_s": round(down_at, 1),
        "wall_s": round(wall, 1), "exit_code": run.returncode, "ended": manifest.get("ended"),
        "records": len(records), "distinct": len(set(keys)), "expected": args.users * args.sessions,
        "failed": sum(1 for r in records if r.get("failure")),
        "outage_lines": [line for line in stderr.splitlines() if line.startswith("outage:")],
    }  # fmt: skip
    print(json.dumps(row, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
