"""Grade the draft answers of existing result files again with another judge, without running any
conversation again; write new result files (the inputs are never touched) and a judge-agreement
table: agreement %, Cohen's kappa, and every session where the two judges differ.

  python runners/rescore.py outputs/*.jsonl --judge-api-base http://host:8000/v1 \\
      --judge-model Qwen/Qwen2.5-72B-Instruct -o rescored/

Each input X.jsonl gives rescored/X.jsonl and its manifest (the input's settings with the new judge,
so a report keeps the two apart), and rescored/agreement.md, agreement.csv and disagreements.csv.
Only the record that counts for each session is graded (the last one written). Sessions that failed
before judging have no draft answer to grade and are copied as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from msc_graph.cache import CacheError, use_cache
from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag
from msc_graph.config import KEY_ENV, ROLE_DEFAULTS, RoleConfig, SessionContext

#: The transport defaults a run uses (``config.py``); the new judge's requests use the same.
_SESSION = SessionContext.model_fields


def parser() -> OneLineParser:
    ap = OneLineParser(prog="runners/rescore.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files to grade again (each read with its manifest, when it has one)")
    add_flag(ap, "-o", "--out-dir", required=True, metavar="DIR", help="folder for the new result files and the agreement table")
    add_flag(ap, "--judge-api-base", required=True, metavar="URL", help="OpenAI-compatible endpoint of the new judge (/v1 optional)")
    add_flag(ap, "--judge-model", required=True, metavar="NAME", help="model of the new judge (litellm prefixes such as hosted_vllm/ are stripped)")
    add_flag(ap, "--api-key", "--judge-api-key", default=None, metavar="KEY",
             help=f"API key of the new judge (default: ${KEY_ENV['judge']}, then $OPENAI_API_KEY, then EMPTY); never written out")  # fmt: skip
    add_flag(ap, "--judge-temperature", type=float, default=ROLE_DEFAULTS["judge"]["temperature"], metavar="T",
             help="sampling temperature of the new judge (default: %(default)s)")  # fmt: skip
    add_flag(ap, "--judge-max-tokens", type=int, default=ROLE_DEFAULTS["judge"]["max_tokens"], metavar="N",
             help="most tokens in one reply of the new judge (default: %(default)s)")  # fmt: skip
    add_flag(ap, "--structured", choices=["auto", "json_schema", "json_object", "prompt"], default="auto",
             help="how the verdict's JSON is asked for: auto (a server-side schema where the server takes one, else "
                  "the keys in the prompt), json_schema, json_object, prompt (default: %(default)s)")  # fmt: skip
    add_flag(ap, "--concurrency", type=int, default=32, metavar="N", help="judge calls in flight at once (default: %(default)s)")
    add_flag(ap, "--timeout", type=float, default=_SESSION["timeout"].default, metavar="S", help="seconds one request may take before it is retried (default: %(default)s)")
    add_flag(ap, "--max-retries", type=int, default=_SESSION["max_retries"].default, metavar="N", help="HTTP retries per request, with backoff (default: %(default)s)")
    add_flag(ap, "--parse-retries", type=int, default=_SESSION["parse_retries"].default, metavar="N", help="extra attempts when a verdict is not valid JSON (default: %(default)s)")
    add_flag(ap, "--cache", default=None, metavar="DIR",
             help="response cache, as runners/batch.py --cache: grading again with the same judge and cache sends nothing")  # fmt: skip
    add_flag(ap, "--overwrite", action="store_true", help="replace rescored files already in the -o folder (never an input)")
    add_flag(ap, "--no-check", action="store_true", help="skip the check that the endpoint answers and serves the model")
    return ap


def judge_config(args) -> RoleConfig:
    if args.concurrency < 1 or args.judge_max_tokens < 1 or args.judge_temperature < 0:
        raise ValueError("--concurrency and --judge-max-tokens must be at least 1, --judge-temperature at least 0")
    return RoleConfig(role="judge", base_url=args.judge_api_base, model=args.judge_model, api_key=args.api_key,
                      temperature=args.judge_temperature, max_tokens=args.judge_max_tokens, timeout_s=args.timeout,
                      max_retries=args.max_retries, structured=args.structured, parse_retries=args.parse_retries)  # fmt: skip


def _check_endpoint(cfg: RoleConfig) -> None:
    from msc_graph.run.preflight import check_endpoint

    asyncio.run(check_endpoint(cfg.base_url, {cfg.model}, cfg.key_value(), start_hint="start the judge's server or fix --judge-api-base",
                               model_flag="--judge-model"))  # fmt: skip


def write_tables(out: Path, rows: list[dict], differ: list[dict]) -> str:
    from msc_graph.results.render import md_table, write_csv
    from msc_graph.results.rescore import KAPPA_NOTE

    write_csv(out / "agreement.csv", rows)
    write_csv(out / "disagreements.csv", differ)
    cols = [c for c in rows[0] if not c.startswith("kappa_")] if rows else []
    short = [{**d, "draft answer": _cut(d["draft answer"]), "new judge": _cut(d["new judge"]), "old judge": _cut(d["old judge"])} for d in differ]
    text = ("# Judge agreement\n\n" + md_table(rows, cols) + f"\n{KAPPA_NOTE}\n\n## Sessions where the judges differ ({len(differ)})\n\n"
            + md_table(short, ["file", "dataset", "user", "session", "problem", "before", "after", "draft answer", "new judge"])
            + "\nIn full: disagreements.csv.\n")  # fmt: skip
    (out / "agreement.md").write_text(text, encoding="utf-8")
    return text


def _cut(text, n: int = 120) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from msc_graph.results.files import ResultsError
    from msc_graph.results.rescore import RescoreError, agreement_rows, plan_files, run_rescore
    from msc_graph.run.errors import RunError
    from msc_graph.security import register_secret

    register_secret(args.api_key)
    try:
        cfg = judge_config(args)
        jobs = plan_files(args.results, args.out_dir, args.overwrite)
        if not args.no_check:
            _check_endpoint(cfg)
        cache = use_cache(args.cache)
    except (RescoreError, ResultsError, RunError, ValueError, CacheError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    total = sum(len(j.records) for j in jobs)
    print(f"grading {total} sessions from {len(jobs)} file(s) with {cfg.model} at {cfg.base_url} ...", file=sys.stderr)
    run_rescore(cfg, jobs, args.concurrency)
    if cache is not None:
        print(f"response cache {args.cache}: {cache.hits} replies from the cache, {cache.misses} calls sent", file=sys.stderr)
    rows, differ = agreement_rows(jobs)
    print(write_tables(Path(args.out_dir), rows, differ))
    print(f"rescored files, agreement.md, agreement.csv and disagreements.csv written to {args.out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
