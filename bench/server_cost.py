"""What a session costs the model server, per role: msc_graph, ``--protocol published``, the published code.

Each runner runs the same workload against its own bench server (``msc_graph.testing.bench_server``,
no latency), which logs every chat request. Replies are padded to realistic lengths (defaults:
agent replies +180 words, user reasonings +60, notes +60) and the user ends each session on turn
``--terminate-after`` (default 7, so a session is about 15 messages, as in the published study).
From the log, per role and per session: model calls, prompt tokens, completion tokens, and the
prompt tokens an ideal prefix cache would still compute (the tokens after the longest prefix a
request shares with any earlier request; ``bench/prefix_cache.py``, which also names the
tokenizer). Roles: the user simulator, the agent, the judge, the notes update after a session
(our reflection, the published notes call) and note selection before each agent turn (the
published scaffolding call; our default memory has none).

Usage: ``python bench/server_cost.py [--users 20 --sessions 5 --terminate-after 7] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import harness
from flags import workload_parser
from harness import run_ours, run_published_code, start_server
from prefix_cache import TOKENIZER, PrefixCache, TokenCounter

ROLES = {"user": "user simulator", "agent": "agent", "judge": "judge", "reflect": "notes update", "notes": "notes update",
         "select": "note selection"}  # fmt: skip
ORDER = ["user simulator", "agent", "judge", "notes update", "note selection", "all"]
RUNNERS = [
    ("ours", "msc_graph (ours, retrieval memory)", "agent_with_memory"),
    ("ours-repeat", "ours, the same notes repeated on every user message (before)", "agent_with_memory"),
    ("pp", "msc_graph --protocol published", "agent_with_memory"),
    ("pub", "the published code (run.py)", "agent_with_memory"),
    ("ours", "msc_graph (ours)", "agent_without_memory"),
    ("pp", "msc_graph --protocol published", "agent_without_memory"),
    ("pub", "the published code (run.py)", "agent_without_memory"),
]  # fmt: skip
COLS = ["calls", "prompt", "completion", "uncached"]


def cost_of_log(path: Path) -> dict[str, dict[str, int]]:
    """Per role: calls, prompt tokens, completion tokens, uncached prompt tokens (an ideal prefix cache)."""
    tokens, cache = TokenCounter(), PrefixCache()
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLS, 0))
    sizes: dict[str, list[int]] = defaultdict(list)
    with path.open() as f:
        for line in f:
            req = json.loads(line)
            seq = tokens.request(req["messages"])
            cached = cache.add(seq)
            completion = len(tokens.ids(req["reply"]))
            for role in (ROLES.get(req["role"], req["role"]), "all"):
                row = out[role]
                row["calls"] += 1
                row["prompt"] += len(seq)
                row["completion"] += completion
                row["uncached"] += len(seq) - cached
                sizes[role].append(len(seq) + completion)
    for role, got in sizes.items():  # the context one request holds on the server (prompt + reply)
        got.sort()
        out[role]["p95_context"] = got[int(0.95 * (len(got) - 1))]
        out[role]["max_context"] = got[-1]
    return dict(out)


def one_runner(runner: str, experiment: str, args: argparse.Namespace, folder: Path) -> dict:
    log = folder / "requests.jsonl"
    proc, url = start_server(0.0, 1_000_000, args.terminate_after, agent_words=args.agent_words,
                             user_words=args.user_words, notes_words=args.notes_words, log=str(log))  # fmt: skip
    try:
        if runner == "pub":
            row = run_published_code(url, args.users, args.sessions, folder, memory=experiment == "agent_with_memory",
                                     batch_size=args.users)  # fmt: skip
        else:
            opts = {"pp": {"protocol": "published"}, "ours-repeat": {"repeat_notes": True}}.get(runner, {})
            row = asyncio.run(run_ours(url, experiment, args.users, args.sessions, 50, folder, **opts))
            lengths = [r["length"] for r in row.pop("records") if r.get("length")]
            row["mean_length"] = sum(lengths) / max(len(lengths), 1)
    finally:
        proc.terminate()
        proc.wait()
    per_role = cost_of_log(log)
    n = max(row["sessions"], 1)
    return {"sessions": row["sessions"], "failures": row["failures"], "mean_length": row.get("mean_length"),
            "per_session": {role: {k: v / n for k, v in c.items() if k in COLS} for role, c in per_role.items()},
            "context": {role: {k: c[k] for k in ("p95_context", "max_context")} for role, c in per_role.items()}}  # fmt: skip


def print_table(experiment: str, results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{experiment}: per session (calls / prompt tokens / completion tokens / prompt tokens an ideal prefix cache computes)")
    print("| role | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for role in ORDER:
        cells = []
        for name in names:
            c = results[name]["per_session"].get(role)
            cells.append("-" if c is None else f"{c['calls']:.2f} / {c['prompt']:,.0f} / {c['completion']:,.0f} / {c['uncached']:,.0f}")
        print(f"| {role} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = workload_parser(__doc__, users=20, sessions=5)
    ap.add_argument("--terminate-after", type=int, default=7, help="the user ends each session on this turn (default 7)")
    ap.add_argument("--agent-words", type=int, default=180, help="filler words per agent reply (default 180)")
    ap.add_argument("--user-words", type=int, default=60, help="filler words per user reasoning (default 60)")
    ap.add_argument("--notes-words", type=int, default=60, help="filler words per note / notes update (default 60)")
    ap.add_argument("--model", default="meta-llama/Llama-3.3-70B-Instruct",
                    help="the model name served (default: the published one, so the agent answers in JSON as published)")
    args = ap.parse_args()
    harness.use_model(args.model)
    print(f"tokenizer: {TOKENIZER}")
    print(f"model={args.model} users={args.users} sessions={args.sessions} terminate_after={args.terminate_after} "
          f"padding: agent {args.agent_words}, user {args.user_words}, notes {args.notes_words} words")  # fmt: skip
    results: dict[str, dict[str, dict]] = defaultdict(dict)
    for runner, label, experiment in RUNNERS:
        with tempfile.TemporaryDirectory() as tmp:
            got = one_runner(runner, experiment, args, Path(tmp))
        results[experiment][label] = got
        print(f"{experiment} / {label}: {got['sessions']} sessions, {got['failures']} failed", flush=True)
    for experiment, by_runner in results.items():
        print_table(experiment, by_runner)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "tokenizer": TOKENIZER, "results": results}, indent=2))


if __name__ == "__main__":
    main()
