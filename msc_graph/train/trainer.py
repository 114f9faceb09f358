"""The GRPO run: TRL's ``GRPOTrainer`` with a LoRA adapter (PEFT) on the base model, the coverage and
format rewards, checkpoints every ``save_steps`` (a rerun resumes from the last one), and per-step
timings (the step's wall time and how much of it waited on the judge) for the manifest and ``bench/``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from msc_graph.train.data import ReflectionExample
from msc_graph.train.model import TrainSetupError
from msc_graph.train.rewards import CoverageJudge, format_reward
from msc_graph.train.settings import TrainSettings


def check_batch_shape(s: TrainSettings) -> None:
    """TRL samples whole groups: the completions of one optimizer step must split into groups."""
    per_step = s.per_device_train_batch_size * s.gradient_accumulation_steps
    if per_step % s.num_generations:
        raise TrainSetupError(f"--per-device-train-batch-size x --gradient-accumulation-steps ({per_step}) must be a multiple "
                              f"of --num-generations ({s.num_generations}); e.g. --num-generations {s.per_device_train_batch_size}")  # fmt: skip


def grpo_config(s: TrainSettings, cuda: bool):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=s.output_dir, learning_rate=s.learning_rate, num_generations=s.num_generations,
        per_device_train_batch_size=s.per_device_train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps, max_completion_length=s.max_completion_length,
        temperature=s.temperature, beta=s.beta, num_train_epochs=s.num_train_epochs, max_steps=s.max_steps,
        save_strategy="steps", save_steps=s.save_steps, logging_steps=s.logging_steps, seed=s.seed,
        gradient_checkpointing=s.gradient_checkpointing and cuda, bf16=cuda, use_cpu=not cuda,
        # the Trainer copies use_cache into the model's config, and generate() then recomputes the
        # whole prefix for every token: keep the KV cache unless checkpointing needs it off
        use_cache=not (s.gradient_checkpointing and cuda),
        use_vllm=s.use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=s.vllm_gpu_memory_utilization,
        reward_weights=[s.coverage_weight, s.format_weight], report_to="none", disable_tqdm=True,
    )  # fmt: skip


def lora_config(s: TrainSettings):
    from peft import LoraConfig

    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules=s.lora_target_modules(), task_type="CAUSAL_LM")  # fmt: skip


@dataclass
class StepTimes:
    """Per optimizer step: its wall time and the seconds of it spent waiting on the judge."""

    judge: CoverageJudge
    steps: list[dict] = field(default_factory=list)
    _start: float = 0.0
    _waited: float = 0.0

    def callback(self):
        from transformers import TrainerCallback

        times = self

        class Timing(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                times._start, times._waited = time.perf_counter(), times.judge.stats.waited_s

            def on_step_end(self, args, state, control, **kw):
                times.steps.append({"step": state.global_step, "step_s": round(time.perf_counter() - times._start, 3),
                                    "judge_wait_s": round(times.judge.stats.waited_s - times._waited, 3)})  # fmt: skip

        return Timing()


def dataset_of(examples: list[ReflectionExample]):
    """The examples as a ``datasets.Dataset``, fingerprinted by their content. (Given a fingerprint,
    datasets does not hash the Arrow table itself, which fails with pyarrow 26 and datasets 5.2.)"""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    rows = [{"prompt": e.prompt, "preferences": e.preferences, "target": e.target} for e in examples]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Dataset(InMemoryTable(pa.Table.from_pylist(rows)), fingerprint=digest)


def train(s: TrainSettings, examples: list[ReflectionExample], judge: CoverageJudge, net, tokenizer) -> dict:
    """Train, save the adapter to ``<output_dir>/adapter``; returns what the manifest records."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOTrainer

    check_batch_shape(s)
    cuda = torch.cuda.is_available()
    times = StepTimes(judge)
    trainer = GRPOTrainer(model=net, reward_funcs=[judge, format_reward], args=grpo_config(s, cuda),
                          train_dataset=dataset_of(examples), processing_class=tokenizer,
                          peft_config=lora_config(s), callbacks=[times.callback()])  # fmt: skip
    last = get_last_checkpoint(s.output_dir) if s.resume and Path(s.output_dir).is_dir() else None
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    adapter = Path(s.output_dir) / "adapter"
    trainer.save_model(str(adapter))
    return {
        "resumed_from": last,
        "train_s": round(time.perf_counter() - started, 3),
        "global_step": trainer.state.global_step,
        "log": [row for row in trainer.state.log_history if "reward" in row],
        "step_times": times.steps,
        "adapter": str(adapter),
    }
