#!/usr/bin/env python
"""Report on result files: tables with 95% CIs, paired memory effects, learning curves, per-preference
enforcement, cost; written as Markdown, CSV, PNG/SVG and one self-contained HTML page.

  python runners/report.py outputs/*.jsonl --out reports/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msc_graph.results import ResultsError, read_result_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files (any number of settings and datasets)")
    ap.add_argument("--out", default="report", help="folder to write the report to (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        records = read_result_files(args.results)
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not records:
        print("error: the result files hold no sessions", file=sys.stderr)
        return 2
    try:
        from msc_graph.report import build_report
    except ImportError:
        print("error: the report needs matplotlib: pip install -e '.[report]'", file=sys.stderr)
        return 2
    report = build_report(records, args.out)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8").split("## Learning curves")[0])
    print(f"report written to {args.out}/ (report.html, report.md, CSVs, {len(report['plots'])} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
