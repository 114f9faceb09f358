"""Merge the outputs of a sharded run (``--shard K/N`` on several machines) into one result file
with its manifest, and report sessions that appear twice or are missing (from the manifests beside
the shards). A shard missing or given twice (by the manifests' K/N, or --expect N) is refused.

  python runners/merge.py outputs/shard1.jsonl outputs/shard2.jsonl -o outputs/merged.jsonl
"""

from __future__ import annotations

import argparse
import sys

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag
from msc_graph.results.export_published import ExportError, check_export_target
from msc_graph.results.files import ResultsError
from msc_graph.results.merge import MergeError, merge_files, write_merged


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="runners/merge.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", help="result files of the shards")
    add_flag(ap, "-o", "--output", required=True, help="the merged result file (replaced if it exists; never one of the shards)")
    add_flag(ap, "--strict", action="store_true", help="exit 1 when sessions are missing or duplicated")
    add_flag(ap, "--expect", type=int, default=None, metavar="N",
             help="the number of shards; refuse any other (default: the --shard K/N in the shards' manifests)")
    args = ap.parse_args(argv)
    try:
        check_export_target(args.output, args.shards)
        result = merge_files(args.shards, expect=args.expect)
    except (MergeError, ExportError, ResultsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_merged(result, args.output)
    print(f"{len(result.records)} sessions -> {args.output}"
          + (f" (expected {result.expected})" if result.expected is not None else " (no manifests: gaps unknown)"))  # fmt: skip
    if result.superseded:
        print(f"superseded ({result.superseded}): attempts a rerun replaced (the last record of a session counts)")
    if result.duplicates:
        print(f"duplicates ({len(result.duplicates)}, first kept): "
              + ", ".join(map(_session, result.duplicates[:20])))  # fmt: skip
    if result.missing:
        print(f"missing ({len(result.missing)}): " + ", ".join(map(_session, result.missing[:20])))
    return 1 if args.strict and (result.duplicates or result.missing) else 0


def _session(key: tuple[int, int, int]) -> str:
    user, session, trial = key
    return f"user {user} session {session}" + (f" trial {trial}" if trial else "")


if __name__ == "__main__":
    sys.exit(main())
