#!/usr/bin/env python
"""Export reflection training data from memory-run results (JSONL, one line per session).

  python runners/export_reflections.py outputs/math_hard_with_memory.jsonl -o reflections.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msc_graph.results import read_result_files  # noqa: E402
from msc_graph.training_export import DEFAULT_COVER_THRESHOLD, export_reflections  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files of agent_with_memory runs")
    ap.add_argument("-o", "--output", required=True, help="where to write the JSONL")
    ap.add_argument("--cover-threshold", type=float, default=DEFAULT_COVER_THRESHOLD,
                    help="least similarity between a preference and a note to count as covered (default: %(default)s)")
    args = ap.parse_args(argv)
    try:  # ResultsError is a ValueError too: one message for unreadable files and unusable records
        n = export_reflections(read_result_files(args.results), args.output, args.cover_threshold)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{n} sessions -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
