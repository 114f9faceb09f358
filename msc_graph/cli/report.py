"""Report on result files: tables with 95% CIs, paired memory effects, learning curves, per-preference
enforcement, cost; written as Markdown, CSV, PNG/SVG and one self-contained HTML page.

  python runners/report.py outputs/*.jsonl --out reports/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag, read_results


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="runners/report.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files (any number of settings and datasets)")
    add_flag(ap, "--out", default="report", help="folder to write the report to (default: %(default)s)")
    args = ap.parse_args(argv)
    records = read_results(args.results)
    if records is None:
        return EXIT_BAD_INPUT
    try:
        from msc_graph.results.report import build_report
    except ImportError:
        print("error: the report needs matplotlib: pip install -e '.[report]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = build_report(records, args.out)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8").split("## Learning curves")[0])
    print(f"report written to {args.out}/ (report.html, report.md, CSVs, {len(report['plots'])} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
