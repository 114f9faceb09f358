"""Export reflection training data from memory-run results (JSONL, one line per session).

  python runners/export_reflections.py outputs/math_hard_with_memory.jsonl -o reflections.jsonl
"""

from __future__ import annotations

import argparse
import sys

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag
from msc_graph.results import read_result_files
from msc_graph.results.export_published import check_export_target
from msc_graph.results.export_training import DEFAULT_COVER_THRESHOLD, export_reflections
from msc_graph.results.files import read_manifest


def split_of(results: list[str]) -> str:
    """The split the runs sampled (from their manifests): train, test, or unknown (no manifest, or mixed)."""
    splits = {((read_manifest(f) or {}).get("dataset") or {}).get("split", "unknown") for f in results}
    return splits.pop() if len(splits) == 1 else "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="runners/export_reflections.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result files of agent_with_memory runs")
    add_flag(ap, "-o", "--output", required=True, help="where to write the JSONL (never one of the inputs)")
    add_flag(ap, "--cover-threshold", type=float, default=DEFAULT_COVER_THRESHOLD,
             help="least similarity between a preference and a note to count as covered (default: %(default)s)")
    args = ap.parse_args(argv)
    try:  # ResultsError and ExportError are ValueErrors too: one message for every unusable input
        check_export_target(args.output, args.results)
        n = export_reflections(read_result_files(args.results), args.output, args.cover_threshold, split_of(args.results))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{n} sessions -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
