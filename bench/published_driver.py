"""Run the published code's own runner (its ``run.py``) on a benchmark workload, in this process.

Started by ``bench/harness.py`` as a child process, with one JSON object on its stdin: the server URL and
model, the published checkout, the users (published profile format), the problems, the task
description, memory on or off, ``max_turns`` and ``batch_size``. It sets up what running the
published code offline needs (litellm's local cost map, no Hugging Face tokenizer download,
stand-in modules for the coding-task evaluators the QA datasets never call), then calls
``run.run_user_profiles`` as the published README's script does, with three patches that change no
call: its dataset loader returns the given problems, the evaluator's missing
``evaluate_conversation`` is its ``evaluate_conversation_acc`` (the published run.py cannot run
without it), and no request waits more than ``REQUEST_TIMEOUT_S`` for its reply. Prints ``RESULT {json}``: wall and CPU seconds of the run alone (imports excluded).
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from msc_graph.testing.published_server import published_standins

#: Seconds one request may take. The published code asks for 36,000,000 (and the judge for
#: litellm's default): one reply lost on the way then stalls a benchmark for hours, as it once did
#: here (one session of 500 waited with its socket idle). With the cap such a request fails and
#: litellm's retries send it again, as against a real server; normal requests take well under 1 s.
REQUEST_TIMEOUT_S = 10.0


def cap_request_timeouts() -> None:
    from collaborativeagents import conversation_evaluator
    from collaborativeagents.agents import collaborator_agent, user_agent

    def capped(fn):
        def call(*args, **kwargs):
            kwargs["timeout"] = min(float(kwargs.get("timeout") or REQUEST_TIMEOUT_S), REQUEST_TIMEOUT_S)
            return fn(*args, **kwargs)

        return call

    for module, name in ((user_agent, "llm_completion"), (collaborator_agent, "llm_completion"), (conversation_evaluator, "completion")):
        setattr(module, name, capped(getattr(module, name)))


def main() -> None:
    args = json.loads(sys.stdin.read())
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="msc-published-"))
    sys.path[:0] = [str(published_standins(tmp / "standins")), args["reference"]]
    import litellm

    litellm.disable_hf_tokenizer_download = True
    litellm.suppress_debug_info = True
    import run  # the published run.py
    from collaborativeagents.conversation_evaluator import ConversationEvaluator

    ConversationEvaluator.evaluate_conversation = ConversationEvaluator.evaluate_conversation_acc
    cap_request_timeouts()
    run.load_dataset = lambda name, eval_size: (args["samples"][:eval_size], args["task"])
    model = "hosted_vllm/" + args["model"]
    roles = {f"{r}_{k}": v for r in ("user", "collaborator", "judge")
             for k, v in (("model_name", model), ("api_base", args["url"]), ("api_key", "EMPTY"))}  # fmt: skip
    cpu0, t0 = time.process_time(), time.perf_counter()
    with redirect_stdout(io.StringIO()) as printed:  # run.py prints a few lines per user
        run.run_user_profiles(
            dataset_name=args.get("dataset_name", "logiqa"), user_profiles=args["profiles"],
            agent_with_reflection=args["memory"], with_proper_scaffolding=args["memory"],
            eval_size=len(args["samples"]), max_turns=args["max_turns"], batch_size=args["batch_size"],
            output_file=str(tmp / "out.jsonl"), **roles,
        )  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    lines = [json.loads(line) for line in (tmp / "out.jsonl").read_text().splitlines() if line.strip()]
    sessions = sum(len(u["generated_conversations"]) for u in lines)
    tail = printed.getvalue().strip().splitlines()[-4:]
    print("RESULT " + json.dumps({"wall_s": wall, "cpu_s": cpu, "users": len(lines), "sessions": sessions, "summary": tail}))


if __name__ == "__main__":
    main()
