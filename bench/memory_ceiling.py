"""The runner's peak memory (RSS) on huge inputs: what ``docs/reliability.md`` states as its ceiling.

Each scenario runs ``runners/batch.py`` in a child process against the fault-injecting scripted
server (loopback) and reads the child's peak RSS (``getrusage`` of a wrapper that only waits for it):

- ``baseline``: 20 users x 2 demo sessions, concurrency 20 (what an ordinary run costs);
- ``profiles-30mb``: a profiles file whose first persona is 30 MB of text;
- ``dataset-30mb``: a dataset file whose first problem is 30 MB of text;
- ``reply-1mb``: every chat completion padded to 1 MB (a server that ignores ``max_tokens``),
  20 users x 2 sessions, concurrency 20;
- ``concurrency-500``: 500 users x 1 demo session with ``--concurrency 500`` on a server that takes
  0.5 s a request, so all 500 sessions are in flight at once.

For each: the exit code, the first ``error:`` line, records written, peak RSS in MB. Results go to
``bench/results_memory_ceiling.json`` (and a table for ``bench/README.md`` on stdout).

Usage: ``python bench/memory_ceiling.py [--only NAME ...] [--pythonpath DIR]`` (``--pythonpath``
runs another checkout's runner, e.g. the code before the limits, for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc, file=sys.stderr)")  # fmt: skip
BIG = 30 * 2**20  # characters of the huge fields


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "msc_graph.testing.fault_server", "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the fault server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}/v1"


def run_batch(url: str, folder: Path, extra: list[str], pythonpath: str) -> dict:
    out = folder / "r.jsonl"
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, str(ROOT / "runners" / "batch.py"), "--api-base", url,
           "--model", "scripted", "--output_file", str(out), "--no-progress", "--max-retries", "1", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": pythonpath}
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    tail = [line for line in res.stderr.splitlines() if line.startswith("MAXRSS_KB")][-1].split()
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    records, failed = len(lines), sum(1 for r in lines if r.get("failure"))
    size = out.stat().st_size if out.exists() else 0
    return {"exit": int(tail[2]), "error": errors[0][:200] if errors else "", "records": records, "failed": failed,
            "results_mb": round(size / 2**20, 1),
            "peak_rss_mb": round(int(tail[1]) / 1024, 1), "wall_s": round(time.time() - t0, 1)}  # fmt: skip


def huge_files(folder: Path) -> tuple[Path, Path]:
    profiles = folder / "profiles.json"
    users = [{"i": 0, "persona": "x" * BIG, "preferences": ["Use bullet points."]},
             {"i": 1, "persona": "A tester.", "preferences": ["Use bullet points."]}]  # fmt: skip
    profiles.write_text(json.dumps(users))
    dataset = folder / "problems.json"
    dataset.write_text(json.dumps([{"problem": "What is 1+1? " + "y" * BIG, "solution": "2"},
                                   {"problem": "What is 2+2?", "solution": "4"}]))  # fmt: skip
    return profiles, dataset


SCENARIOS: dict[str, tuple[tuple[str, ...], list[str]]] = {
    # name: (server flags, runner flags; {profiles} / {dataset} filled in)
    "baseline": ((), ["--dataset", "demo", "--users", "20", "--eval_size", "2", "--concurrency", "20"]),
    "profiles-30mb": ((), ["--dataset", "demo", "--profiles", "{profiles}", "--eval_size", "1"]),
    "dataset-30mb": ((), ["--dataset", "{dataset}", "--users", "2", "--eval_size", "1"]),
    "reply-1mb": (("--fault", "huge=1.0"), ["--dataset", "demo", "--users", "20", "--eval_size", "2", "--concurrency", "20",
                                            "--max-failure-rate", "1"]),
    "concurrency-500": (("--latency", "0.5"), ["--dataset", "demo", "--users", "500", "--eval_size", "1", "--concurrency", "500"]),
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--pythonpath", default=str(ROOT), help="the checkout whose runner is measured (default: this one)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_memory_ceiling.json"))
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        profiles, dataset = huge_files(Path(tmp))
        for name in args.only:
            server_flags, flags = SCENARIOS[name]
            proc, url = start_server(*server_flags)
            try:
                folder = Path(tmp) / name
                folder.mkdir()
                filled = [f.format(profiles=profiles, dataset=dataset) for f in flags]
                rows[name] = {"flags": " ".join(flags), "server": " ".join(server_flags),
                              **run_batch(url, folder, filled, args.pythonpath)}  # fmt: skip
            finally:
                proc.kill()
                proc.wait()
            print(f"{name}: {rows[name]}", file=sys.stderr, flush=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "pythonpath": args.pythonpath}  # fmt: skip
    Path(args.out).write_text(json.dumps({"meta": meta, "scenarios": rows}, indent=1) + "\n")
    print("| scenario | exit | records (failed) | results file (MB) | peak RSS (MB) | wall (s) | first error line |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['exit']} | {r['records']} ({r['failed']}) | {r['results_mb']} | {r['peak_rss_mb']} | {r['wall_s']} "
              f"| {r['error'][:90]} |")


if __name__ == "__main__":
    main()
