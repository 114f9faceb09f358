"""Train the agent's reflection (the notes written after a session) with GRPO: TRL's GRPOTrainer,
a LoRA adapter, a coverage reward graded by a judge endpoint and a format reward. Needs the
``[train]`` extra (torch first: pip install torch==2.13.0 for CPU, a CUDA build on a GPU).

  # the study's recipe on one GPU (docs/training.md); check the plan first
  python runners/train_reflection.py outputs/math_hard_train_memory.jsonl --use-vllm \\
      --judge-api-base http://localhost:8004/v1 --output-dir outputs/reflection-grpo --dry-run
  # then serve the adapter and evaluate with it
  python runners/serve.py sglang --agent-model Qwen/Qwen2.5-7B-Instruct --lora reflection=outputs/reflection-grpo/adapter
  python runners/batch.py ... --memory notes --reflection-model Qwen/Qwen2.5-7B-Instruct:reflection

Data: results of memory runs made with --split train (or export_reflections.py output of such
runs); test-split sessions are refused. A rerun with the same --output-dir resumes from the last
checkpoint. Exit codes: 0 done; 2 bad input (nothing written); 1 training failed (see the manifest).
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from typing import Any

import httpx
from pydantic import ValidationError

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag
from msc_graph.config import RoleConfig
from msc_graph.names import normalize_base_url, normalize_model_name
from msc_graph.results.files import ResultsError
from msc_graph.train.data import TrainingDataError, load_examples
from msc_graph.train.estimate import plan_of
from msc_graph.train.model import TrainSetupError
from msc_graph.train.settings import TrainSettings
from msc_graph.train.trainer import check_batch_shape

FIELDS = TrainSettings.model_fields


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="runners/train_reflection.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help=FIELDS["data"].description)
    for name, field in FIELDS.items():
        if name == "data":
            continue
        kind: Any = field.annotation
        help_text = f"{field.description} (default: {field.default})"
        if kind is bool:
            add_flag(p, f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            add_flag(p, f"--{name.replace('_', '-')}", choices=typing.get_args(kind), default=field.default, help=help_text)
        else:
            add_flag(p, f"--{name.replace('_', '-')}", type=kind, default=field.default, help=help_text)
    return p


def judge_config(s: TrainSettings) -> RoleConfig:
    """The coverage judge's calls: the project's transport (timeouts, retries, parse retries)."""
    return RoleConfig(role="judge", base_url=normalize_base_url(s.judge_api_base), model=normalize_model_name(s.judge_model),
                      temperature=0.0, max_tokens=s.judge_max_tokens, timeout_s=s.judge_timeout, max_retries=s.judge_retries,
                      structured=s.structured, parse_retries=2, max_inflight=s.judge_concurrency)  # fmt: skip


def check_judge(cfg: RoleConfig) -> None:
    try:
        httpx.get(f"{cfg.base_url}/models", timeout=10, headers={"Authorization": f"Bearer {cfg.key_value()}"}).raise_for_status()
    except httpx.HTTPError as exc:
        raise TrainSetupError(f"the coverage judge at {cfg.base_url} does not answer ({type(exc).__name__}); start it or "
                              "give --judge-api-base") from None  # fmt: skip


def run_training(s: TrainSettings, examples: list) -> int:
    from msc_graph.train.manifest import TrainManifest
    from msc_graph.train.model import load_base, require_train_extra
    from msc_graph.train.rewards import CoverageJudge
    from msc_graph.train.trainer import train

    require_train_extra()
    cfg = judge_config(s)
    check_judge(cfg)
    manifest = TrainManifest(s, len(examples))
    manifest.write()
    judge = CoverageJudge(cfg, s.judge_concurrency, manifest.path.with_name("judge_cache.jsonl"))
    try:
        net, tok = load_base(s.model, s.gguf)
        got = train(s, examples, judge, net, tok)
    except KeyboardInterrupt:
        manifest.finish("interrupted", judge=vars(judge.stats))
        return 130
    except Exception as exc:
        manifest.finish(f"failed: {type(exc).__name__}: {exc}"[:500], judge=vars(judge.stats))
        raise
    finally:
        judge.close()
    manifest.finish("finished", judge=vars(judge.stats), **got)
    print(f"adapter -> {got['adapter']} ({got['global_step']} steps); manifest -> {manifest.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        s = TrainSettings(**vars(args))
        check_batch_shape(s)
        examples = load_examples(s.data, s.min_target)
        if s.dry_run:
            print(json.dumps({"settings": s.model_dump(), "plan": plan_of(s, len(examples))}, indent=2))
            return 0
        return run_training(s, examples)
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"error: --{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}", file=sys.stderr)
    except (TrainingDataError, TrainSetupError, ResultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
