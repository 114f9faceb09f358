"""The settings of a reflection training run: every hyperparameter a field (its flag name), with
the study-scale default (Qwen-2.5-7B-Instruct, LoRA, GRPO on one GPU) and what it does.

The published study names the method (GRPO on Qwen-2.5-7B-Instruct, a judge reward for how well
the notes cover the user's preferences, a format reward) but not every number; the defaults the
study does not give are ours, chosen from common GRPO + LoRA practice (docs/training.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STUDY_MODEL = "Qwen/Qwen2.5-7B-Instruct"


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: list[str] = Field(default_factory=list, description="results of --split train memory runs, or export_reflections.py output")
    output_dir: str = Field("outputs/reflection-grpo", description="checkpoints, the adapter (adapter/), the manifest")
    # -- the policy
    model: str = Field(STUDY_MODEL, description="base model: a hub id (already downloaded) or a local folder")
    gguf: str = Field("", description="a GGUF file to load instead of --model (dequantized; the CPU smoke uses SmolLM2's)")
    adapter_name: str = Field("reflection", description="the adapter's name when served (serve.py --lora NAME=PATH)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_targets: str = Field("all-linear", description="modules LoRA adapts: all-linear, or comma-separated names")
    # -- GRPO
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate")
    num_generations: int = Field(8, ge=2, description="completions sampled per prompt (the GRPO group)")
    per_device_train_batch_size: int = Field(8, ge=1, description="completions per device per micro-batch")
    gradient_accumulation_steps: int = Field(4, ge=1, description="micro-batches per optimizer step")
    max_completion_length: int = Field(1024, ge=8, description="most tokens in one generated reflection")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the generations")
    beta: float = Field(0.04, ge=0, description="KL penalty towards the base model (0: no reference model)")
    num_train_epochs: float = Field(1.0, gt=0, description="passes over the training prompts")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: by epochs)")
    save_steps: int = Field(50, ge=1, description="a checkpoint every N steps (resumable)")
    logging_steps: int = Field(1, ge=1, description="log rewards every N steps")
    seed: int = Field(42, description="sampling and shuffling seed")
    gradient_checkpointing: bool = Field(True, description="trade compute for memory (on by default at 7B)")
    use_vllm: bool = Field(False, description="generate with vLLM (colocated on the training GPU; needs vllm)")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="GPU share vLLM may take when colocated")
    # -- rewards
    coverage_weight: float = Field(1.0, ge=0, description="weight of the coverage reward")
    format_weight: float = Field(0.5, ge=0, description="weight of the format reward")
    min_target: int = Field(1, ge=0, description="train only on sessions where at least N preferences were enforced so far")
    judge_api_base: str = Field("http://localhost:8004/v1", description="OpenAI-compatible endpoint of the coverage judge")
    judge_model: str = Field("meta-llama/Llama-3.3-70B-Instruct", description="the coverage judge's model")
    judge_max_tokens: int = Field(512, ge=16, description="most tokens in one judge reply")
    judge_concurrency: int = Field(32, ge=1, description="judge calls in flight at once")
    judge_timeout: float = Field(120.0, gt=0, description="seconds one judge request may take before it is retried")
    judge_retries: int = Field(4, ge=0, description="HTTP retries per judge request")
    structured: Literal["auto", "json_schema", "json_object", "prompt"] = Field(
        "auto", description="how the judge's JSON is enforced (as batch.py --structured)"
    )
    # -- the run
    resume: bool = Field(True, description="continue from the last checkpoint in --output-dir")
    dry_run: bool = Field(False, description="print the plan (data, config, memory estimate) and exit; loads no model")

    def lora_target_modules(self) -> str | list[str]:
        return "all-linear" if self.lora_targets == "all-linear" else [t.strip() for t in self.lora_targets.split(",") if t.strip()]
