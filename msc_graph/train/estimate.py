"""What a training run will cost, before it loads anything (``--dry-run``): optimizer steps, judge
calls, and a rough GPU memory estimate for the study's model. The estimate is arithmetic on the
model's published shape, not a measurement (docs/training.md says what is measured where).
"""

from __future__ import annotations

import math

from msc_graph.train.settings import TrainSettings

#: Published shapes: parameters, layers, hidden size, vocabulary (from the models' config files).
SHAPES = {
    "Qwen/Qwen2.5-7B-Instruct": (7.62e9, 28, 3584, 152064),
    "meta-llama/Llama-3.1-8B-Instruct": (8.03e9, 32, 4096, 128256),
}
GIB = 1024**3


def lora_params(s: TrainSettings, layers: int, hidden: int) -> float:
    """LoRA parameters over the seven projections of a Qwen/Llama-style layer: r x (in + out) each,
    about 25 x hidden in sum with grouped k/v and an MLP about 5.3x wider (Qwen2.5-7B: 25.1)."""
    return layers * s.lora_r * 25 * hidden


def memory_gib(s: TrainSettings, prompt_tokens: int = 3000) -> dict | None:
    shape = SHAPES.get(s.model)
    if shape is None:
        return None
    params, layers, hidden, vocab = shape
    seq = prompt_tokens + s.max_completion_length
    weights = params * 2  # bf16
    adapter = lora_params(s, layers, hidden) * (4 + 4 + 8)  # fp32 weights, grads, Adam's two moments
    # activations kept per micro-batch: one hidden state per layer and token with checkpointing,
    # about 16 without; logits of the completion in fp32
    per_token = layers * hidden * 2 * (1 if s.gradient_checkpointing else 16)
    activations = s.per_device_train_batch_size * seq * per_token
    logits = s.per_device_train_batch_size * s.max_completion_length * vocab * 4
    vllm = s.vllm_gpu_memory_utilization * 141 * GIB if s.use_vllm else 0  # of an H200's 141 GB
    parts = {"weights": weights, "adapter_and_optimizer": adapter, "activations": activations, "logits": logits,
             "vllm_colocated": vllm}  # fmt: skip
    out = {k: round(v / GIB, 1) for k, v in parts.items()}
    out["total"] = round(sum(parts.values()) / GIB, 1)
    out["assumes"] = f"{prompt_tokens} prompt tokens + {s.max_completion_length} completion tokens per sequence"
    return out


def plan_of(s: TrainSettings, examples: int) -> dict:
    completions_per_step = s.per_device_train_batch_size * s.gradient_accumulation_steps
    prompts_per_step = completions_per_step // s.num_generations
    steps = s.max_steps if s.max_steps > 0 else math.ceil(examples * s.num_train_epochs / prompts_per_step)
    return {
        "examples": examples,
        "prompts_per_step": prompts_per_step,
        "completions_per_step": completions_per_step,
        "optimizer_steps": steps,
        "judge_calls_at_most": steps * completions_per_step,
        "checkpoints": steps // s.save_steps,
        "gpu_memory_gib": memory_gib(s),
    }
