"""Merge the result files of sharded runs, reporting duplicates and missing sessions.

Within one file the last record of a (user, session) is the one that counts (a failed session run
again supersedes its first attempt, as resume reads it); the same session in two files is a
duplicate, and the first file given wins."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from msc_graph.results.files import RecordWriter, read_manifest, read_records


class MergeError(ValueError):
    """The files cannot be merged; the message says which and why."""


@dataclass
class MergeResult:
    records: list[dict]
    duplicates: list[tuple[int, int]] = field(default_factory=list)
    missing: list[tuple[int, int]] = field(default_factory=list)
    expected: int | None = None
    #: Earlier attempts of sessions that were run again in the same file (left out, not duplicates).
    superseded: int = 0


def merge_files(paths: list[str | Path]) -> MergeResult:
    per_file: list[list[dict]] = []
    hashes: set[str] = set()
    superseded = 0
    expected: set[tuple[int, int, int]] = set()
    have_manifests = True
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise MergeError(f"{path} does not exist")
        recs = read_records(path)
        latest = {_key(r): r for r in recs}
        superseded += len(recs) - len(latest)
        per_file.append(list(latest.values()))
        hashes |= {r.get("settings_hash") for r in recs}
        data = read_manifest(path)
        if data is not None:
            size = data["dataset"]["size"]
            trials = int((data.get("config") or {}).get("trials") or 1)
            expected |= {(u, s, t) for u in data["profiles"]["users"] for s in range(size) for t in range(trials)}
            hashes.add(data.get("settings_hash"))
        else:
            have_manifests = False
    hashes.discard(None)
    if len(hashes) > 1:
        raise MergeError(f"the files were made with different settings ({', '.join(sorted(hashes))}); merge one setting at a time")
    seen: dict[tuple[int, int, int], dict] = {}
    duplicates = []
    for r in (r for recs in per_file for r in recs):
        key = _key(r)
        if key in seen:
            duplicates.append(key)
        else:
            seen[key] = r
    missing = sorted(expected - set(seen)) if have_manifests else []
    merged = sorted(seen.values(), key=lambda r: (r["user_id"], r.get("trial", 0), r["session_index"]))
    return MergeResult(merged, sorted(duplicates), missing, len(expected) if have_manifests else None, superseded)


def _key(r: dict) -> tuple[int, int, int]:
    """(user, session index, trial): a record without ``trial`` is trial 0."""
    return (r["user_id"], r["session_index"], r.get("trial", 0))


def write_merged(result: MergeResult, output: str | Path) -> None:
    output = Path(output)
    output.unlink(missing_ok=True)
    with RecordWriter(output) as writer:
        for r in result.records:
            writer.write(r)
