"""Report on result files: one row per setting and dataset (plus a pooled "all datasets" row), 95%
intervals by a bootstrap over users, paired effects between runs that differ in one setting alone,
the interaction metrics VARS reports, learning curves per metric (PNG, SVG, PDF), learning per
preference category, cost, and a transcript viewer; written as Markdown, CSV and one
self-contained HTML page.

  python runners/report.py outputs/*.jsonl --out reports/
  python runners/report.py outputs/*.jsonl --compare agent.model --baseline meta-llama/Llama-3.3-70B-Instruct

Each results file is read with the manifest beside it (X.jsonl.manifest.json), which says every
setting that changes results; rows are labelled by the settings that differ between them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag


def parser() -> OneLineParser:
    ap = OneLineParser(prog="runners/report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files (any number of settings and datasets)")
    add_flag(ap, "--out", default="report", help="folder to write the report to (default: %(default)s)")
    add_flag(ap, "--compare", default="memory", metavar="SETTING",
             help="the setting whose effect is paired: memory (default), or any setting the Settings table lists, "
                  "such as agent.model, judge.model, max_turns, retrieval_k")  # fmt: skip
    add_flag(ap, "--baseline", default=None, metavar="VALUE",
             help="the value of --compare every other value is compared with (default: none, for --compare memory; "
                  "required for any other --compare)")  # fmt: skip
    add_flag(ap, "--transcripts", choices=["all", "failed", "none"], default="all",
             help="sessions the HTML transcript viewer carries: all (default), only failed ones, or none")  # fmt: skip
    add_flag(ap, "--quick-turns", type=int, default=4, metavar="N",
             help="quick resolution: solved within at most N user turns (default: %(default)s)")  # fmt: skip
    add_flag(ap, "--late-fraction", type=float, default=0.25, metavar="F",
             help="late-session success: TS over the last F of each user's sessions, at least one (default: %(default)s)")  # fmt: skip
    add_flag(ap, "--seed", type=int, default=0, help="seed of the bootstrap resampling, for reproducible intervals (default: 0)")
    return ap


def _check(args, loaded) -> str | None:
    """What is wrong with the input, in one line (None: nothing)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; give a folder"
    if any(Path(p).resolve() == out.resolve() for p in args.results):
        return f"--out {out} is one of the result files"
    if not loaded.records:
        return "the result files hold no sessions"
    if args.compare != "memory" and args.baseline is None:
        return f"--compare {args.compare} needs --baseline VALUE (one of the values the settings have)"
    known = sorted({k for s in loaded.settings.values() for k in s.values})
    if args.compare not in known:
        return f"--compare {args.compare}: no setting of that name; known: {', '.join(known)}"
    if args.quick_turns < 1 or not 0 < args.late_fraction <= 1:
        return "--quick-turns must be at least 1 and --late-fraction in (0, 1]"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = build(args)
    if isinstance(report, int):
        return report
    print((Path(args.out) / "report.md").read_text(encoding="utf-8").split("## Learning curves")[0])
    figures = len({p.stem for p in report["plots"]})
    print(f"report written to {args.out}/ (report.html with the transcript viewer, report.md, CSVs, {figures} figures as PNG, SVG and PDF)")
    return 0


def build(args: argparse.Namespace) -> dict | int:
    """Write the report ``args`` ask for; its tables, or the exit code of bad input (one line said why)."""
    try:
        import matplotlib  # noqa: F401
        import scipy  # noqa: F401

        from msc_graph.results.report import ReportOptions, build_report
        from msc_graph.results.settings import load_results
    except ImportError as exc:
        print(f"error: the report needs matplotlib, scipy and pandas ({exc}): pip install -e '.[report]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    from msc_graph.results.files import ResultsError

    try:
        loaded = load_results(args.results)
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _check(args, loaded)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = ReportOptions(compare=args.compare, baseline=args.baseline or "none", seed=args.seed,
                            quick_turns=args.quick_turns, late_fraction=args.late_fraction, transcripts=args.transcripts)  # fmt: skip
    return build_report(loaded, args.out, options)


if __name__ == "__main__":
    sys.exit(main())
