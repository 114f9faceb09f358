#!/usr/bin/env python
"""Merge the outputs of a sharded run (``--shard K/N`` on several machines) into one result file,
and report sessions that appear twice or are missing (from the manifests beside the shards).

  python runners/merge.py outputs/shard1.jsonl outputs/shard2.jsonl -o outputs/merged.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msc_graph.merge import MergeError, merge_files, write_merged  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", help="result files of the shards")
    ap.add_argument("-o", "--output", required=True, help="the merged result file (replaced if it exists)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when sessions are missing or duplicated")
    args = ap.parse_args(argv)
    try:
        result = merge_files(args.shards)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_merged(result, args.output)
    print(f"{len(result.records)} sessions -> {args.output}"
          + (f" (expected {result.expected})" if result.expected is not None else " (no manifests: gaps unknown)"))  # fmt: skip
    if result.duplicates:
        print(f"duplicates ({len(result.duplicates)}, first kept): "
              + ", ".join(f"user {u} session {s}" for u, s in result.duplicates[:20]))  # fmt: skip
    if result.missing:
        print(f"missing ({len(result.missing)}): " + ", ".join(f"user {u} session {s}" for u, s in result.missing[:20]))
    return 1 if args.strict and (result.duplicates or result.missing) else 0


if __name__ == "__main__":
    sys.exit(main())
