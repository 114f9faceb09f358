"""The published code and ``--protocol published`` run side by side on the same scripted replies
(the differential tests in ``tests/integration/test_published_*.py``).

Two loopback servers answer the published prompts the same way (``published_server``: a reply is
a function of the request, or of a scripted session's script and its calls so far). The published
code's own loop and evaluator run against one (in a child process, with stand-ins for the
coding-task modules it imports but the QA datasets never use), ``runners/batch.py --protocol
published`` against the other.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from msc_graph.data import load_dataset_problems, load_profiles
from msc_graph.results import read_records
from msc_graph.testing.published_server import published_standins
from tests.helpers import PROFILES_FILE, SHARED, Server, run_cli, start_scripted_server

REFERENCE = Path(SHARED).parent.parent / "reference" / "multisessioncollab"
JSON_AGENT = "meta-llama/Llama-3.3-70B-Instruct"

# The published code's loop and evaluator, as its run.py drives them, on the given samples: one
# entry per session it kept (a session its memory loop stored twice is there twice; one it gave up
# on is not there). A judgement that raises is kept as ``judge_error`` (its run.py would stop). The
# User Effort count is run.py's (entries whose enforce_preferences == True or == "True").
DRIVER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["HF_HUB_OFFLINE"] = "1"
    setup = json.loads(sys.argv[1])
    sys.path[:0] = [setup["standins"], setup["reference"]]
    import litellm
    litellm.disable_hf_tokenizer_download = True
    litellm.suppress_debug_info = True
    from collaborativeagents.conversation_generator import ConversationGenerator
    from collaborativeagents.conversation_evaluator import ConversationEvaluator

    def run(args):
        model = "hosted_vllm/" + args["model"]
        gen = ConversationGenerator(
            user_task_description=args["task"], user_persona=args["persona"],
            user_preferences="\\n".join(f"{i+1}. {p}" for i, p in enumerate(args["preferences"])),
            max_turns=args["max_turns"], with_proper_scaffolding=args["memory"],
            user_model_name=model, user_api_base=args["url"], user_api_key="EMPTY",
            collaborator_model_name=model, collaborator_api_base=args["url"], collaborator_api_key="EMPTY")
        if args["memory"]:
            sessions = gen.generate_conversations_with_reflective_agent(args["samples"])
        else:
            sessions = [s for s in (gen.generate_conversation(s) for s in args["samples"]) if s is not None]
        judge = ConversationEvaluator(dataset_name="logiqa", model_name=model, api_base=args["url"], api_key="EMPTY")
        out = []
        for s in sessions:
            entry = {"problem": s["sample"]["problem"], "task_success": None, "judge_error": None}
            try:
                judge.evaluate_conversation_acc(s)
                entry["task_success"] = s["evaluation"]["accuracy"]["accuracy"]
            except Exception as exc:
                entry["judge_error"] = f"{type(exc).__name__}: {exc}"[:200]
            entry["user_effort"] = sum(1 for m in s["full_conversation_log"]
                         if "enforce_preferences" in m and (m["enforce_preferences"] == True or m["enforce_preferences"] == "True"))
            entry["length"] = len(s["conversation"])
            out.append(entry)
        return out

    # one job in argv, or (a worker) one job per line of stdin, each answered with a RESULT line
    jobs = [setup] if "samples" in setup else (json.loads(line) for line in sys.stdin)
    for job in jobs:
        print("RESULT " + json.dumps(run(job)), flush=True)
    """
)


def require_published_code() -> None:
    if not (REFERENCE / "collaborativeagents" / "prompts.py").is_file():
        pytest.skip(f"the published code is not at {REFERENCE}")
    if importlib.util.find_spec("litellm") is None:
        pytest.skip("the published code needs litellm (pip install -e '.[dev]')")


def published_profile():
    """The first published profile (the differential runs play one user)."""
    if not PROFILES_FILE.is_file():
        pytest.skip("the published profiles are not in ../shared/data")
    return load_profiles(PROFILES_FILE)[0]


def start_server(model: str) -> Server:
    return start_scripted_server("--published-code", str(REFERENCE), model=model, module="published_server")


def server_calls(server: Server) -> dict:
    """``{"calls": per role, "sessions": per scripted session}`` (``published_server``)."""
    return httpx.get(server.url.removesuffix("/v1") + "/calls", timeout=5).json()


def post_scripts(server: Server, scripts: dict) -> None:
    httpx.post(server.url.removesuffix("/v1") + "/scripts", json=scripts, timeout=5).raise_for_status()


def _job(tmp: Path, server: Server, samples: list[dict], memory: bool, model: str, max_turns: int) -> dict:
    profile = published_profile()
    dataset = tmp / "task.json"
    dataset.write_text(json.dumps(samples[:1]))
    return {"url": server.url, "model": model, "samples": samples, "memory": memory, "max_turns": max_turns,
            "task": load_dataset_problems(str(dataset), 1).task_description,
            "persona": profile.persona, "preferences": profile.preferences}  # fmt: skip


def _setup(tmp: Path) -> dict:
    return {"standins": str(published_standins(tmp / "standins")), "reference": str(REFERENCE)}


class PublishedWorker:
    """The published driver as one long-lived child, a job per line: its imports are paid once."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "published-stderr.log"
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(_setup(tmp))], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True)  # fmt: skip

    def run(self, job: dict) -> list[dict]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:  # the published code prints as it goes
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise AssertionError(f"the published driver stopped: {self.log.read_text()[-3000:]}")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_published(
    tmp: Path, server: Server, samples: list[dict], *, memory: bool, model: str, max_turns: int, worker: PublishedWorker | None = None
) -> list[dict]:
    """The published code on ``samples``, one user (the first published profile)."""
    job = _job(tmp, server, samples, memory, model, max_turns)
    if worker is not None:
        return worker.run(job)
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps({**_setup(tmp), **job})], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


def run_ours(
    tmp: Path, server: Server, samples: list[dict], *, memory: bool, model: str, max_turns: int, in_process: bool = False
) -> dict[str, dict]:
    """``runners/batch.py --protocol published`` on ``samples``, one user: its records by problem
    (``in_process``: its ``main`` in this process, without a start-up per run)."""
    dataset, profiles, out = tmp / "scenarios.json", tmp / "profiles.json", tmp / "ours.jsonl"
    dataset.write_text(json.dumps(samples))
    profiles.write_text(json.dumps([published_profile().model_dump(exclude={"preference_keys"})]))
    experiment = "agent_with_memory" if memory else "agent_without_memory"
    argv = ["--protocol", "published", "--published-code", str(REFERENCE), "--experiment_type", experiment,
            "--dataset", str(dataset), "--eval_size", str(len(samples)), "--profiles", str(profiles),
            "--max_turns", str(max_turns), "--api-base", server.url, "--model", f"hosted_vllm/{model}",
            "--output_file", str(out), "--no-progress", "--max-failure-rate", "1"]  # fmt: skip
    if in_process:
        from msc_graph.cli.batch import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
        assert code == 0, err.getvalue()[-3000:]
    else:
        res = run_cli(*argv, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    return {r["problem"]: r for r in read_records(out)}
