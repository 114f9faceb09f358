"""Reflection training's own time per GRPO step against the reward calls it waits on.

A memory run on the train split against the scripted server, then ``train_reflection.py`` on it
with SmolLM2-135M (CPU) or any ``--model``; the scripted server plays the coverage judge with
``--latency`` seconds per call (a 70B judge answers in seconds, not microseconds). From the
training manifest: per step, wall seconds, seconds waiting on the judge, and the rest (generation,
forward/backward, TRL's bookkeeping: the loop's own time).

  python bench/train_overhead.py --steps 3 --latency 0.5 --json bench/results_train_overhead.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import batch_args, run_cli, start_scripted_server  # noqa: E402
from tests.integration.test_train_reflection import PROFILES, smollm2  # noqa: E402


def train_run(args: argparse.Namespace, tmp: Path) -> dict:
    data_server = start_scripted_server()
    judge = start_scripted_server("--latency", str(args.latency))
    try:
        results, profiles = tmp / "train.jsonl", tmp / "profiles.json"
        profiles.write_text(json.dumps(PROFILES))
        res = run_cli(*batch_args(data_server, results, users=2, eval_size=2), "--experiment_type", "agent_with_memory",
                      "--memory", "notes", "--split", "train", "--profiles", str(profiles))  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        model = ["--model", args.model] if args.model else ["--gguf", smollm2()]
        cmd = [sys.executable, str(ROOT / "runners" / "train_reflection.py"), str(results), *model,
               "--judge-api-base", judge.url, "--judge-model", "scripted", "--output-dir", str(tmp / "grpo"),
               "--max-steps", str(args.steps), "--num-generations", str(args.generations),
               "--per-device-train-batch-size", str(args.generations), "--gradient-accumulation-steps", "1",
               "--max-completion-length", str(args.completion_tokens), "--beta", "0", "--save-steps", "1000"]  # fmt: skip
        started = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert res.returncode == 0, res.stderr[-3000:]
        wall = time.perf_counter() - started
        return {"manifest": json.loads((tmp / "grpo" / "manifest.json").read_text()), "command_wall_s": wall}
    finally:
        data_server.stop()
        judge.stop()


def summary(run: dict, args: argparse.Namespace) -> dict:
    steps = run["manifest"]["step_times"]
    own = [s["step_s"] - s["judge_wait_s"] for s in steps]
    return {
        "latency_s": args.latency, "generations": args.generations, "completion_tokens": args.completion_tokens,
        "steps": steps, "judge": run["manifest"]["judge"],
        "median_step_s": statistics.median(s["step_s"] for s in steps),
        "median_judge_wait_s": statistics.median(s["judge_wait_s"] for s in steps),
        "median_loop_own_s": statistics.median(own),
        "command_wall_s": round(run["command_wall_s"], 1), "load_average": os.getloadavg(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--completion-tokens", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.5, help="seconds the scripted judge takes per call")
    ap.add_argument("--model", default="", help="a transformers folder or hub id instead of SmolLM2's GGUF")
    ap.add_argument("--json", default="", help="write the summary here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = summary(train_run(args, Path(tmp)), args)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
