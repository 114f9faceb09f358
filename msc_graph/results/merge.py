"""Merge the result files of sharded runs into one file with its own manifest.

Refused (``MergeError``, nothing written): files of different settings; a shard missing, given
twice, or from another split of the users (the ``--shard K/N`` in the shards' manifests, or the
number of files the caller expects, ``--expect N``); two shards whose users overlap. Reported:
sessions in two files (duplicates: the first file given wins) and sessions no file holds
(missing, from the manifests). Within one
file the last record of a key counts (``records.latest_by_key``), as resume reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from msc_graph.records import RecordKey, SessionRecord, latest_by_key
from msc_graph.results.files import (
    RecordWriter,
    manifest_path,
    read_manifest,
    read_session_records,
    write_json_atomic,
)


class MergeError(ValueError):
    """The files cannot be merged; the message says which and why."""


@dataclass
class Shard:
    path: Path
    records: list[SessionRecord]
    manifest: dict | None
    #: Earlier attempts of sessions that were run again in this file (left out, not duplicates).
    superseded: int = 0

    @property
    def spec(self) -> tuple[int, int] | None:
        """The ``--shard K/N`` its run was made with (None: unsharded, or no manifest)."""
        text = ((self.manifest or {}).get("config") or {}).get("shard")
        if not text:
            return None
        k, n = (int(x) for x in str(text).split("/"))
        return k, n


@dataclass
class MergeResult:
    records: list[SessionRecord]
    duplicates: list[tuple[int, int, int]] = field(default_factory=list)
    missing: list[tuple[int, int, int]] = field(default_factory=list)
    expected: int | None = None
    superseded: int = 0
    shards: list[Shard] = field(default_factory=list)


def read_shard(path: str | Path) -> Shard:
    path = Path(path)
    if not path.is_file():
        raise MergeError(f"{path} does not exist")
    manifest = read_manifest(path)
    records = read_session_records(path)
    latest = list(latest_by_key(records).values())
    return Shard(path, latest, manifest, len(records) - len(latest))


def check_shards(shards: list[Shard], expect: int | None = None) -> None:
    """Refuse a shard that is missing, given twice or from another split, and overlapping users."""
    names = [str(s.path) for s in shards]
    if expect is not None and len(shards) != expect:
        raise MergeError(f"--expect {expect}: {len(shards)} result files given ({', '.join(names)}); give every shard once")
    specs = [(str(s.path), s.spec) for s in shards]
    if any(spec for _, spec in specs):
        unsharded = [name for name, spec in specs if spec is None]
        if unsharded:
            raise MergeError(f"{unsharded[0]} has no --shard K/N in a manifest beside it, unlike the others; merge the shards of one run")
        counts = {spec[1] for _, spec in specs if spec}
        if len(counts) > 1 or (expect is not None and counts != {expect}):
            raise MergeError(f"the shards split the users in different ways ({', '.join(f'{k}/{n}' for _, (k, n) in specs)}); "  # type: ignore[misc]
                             "merge the N shards of one --shard K/N run")  # fmt: skip
        n = counts.pop()
        by_k: dict[int, str] = {}
        for name, (k, _) in specs:  # type: ignore[misc]
            if k in by_k:
                raise MergeError(f"shard {k}/{n} is given twice ({by_k[k]} and {name}); give each shard once")
            by_k[k] = name
        absent = [f"{k}/{n}" for k in range(1, n + 1) if k not in by_k]
        if absent:
            raise MergeError(f"shard {', '.join(absent)} is missing ({len(by_k)} of {n} given); add its result file")
        owner: dict[int, str] = {}
        for s in shards:
            for user in (s.manifest or {}).get("profiles", {}).get("users", []):
                if user in owner:
                    raise MergeError(f"{owner[user]} and {s.path} both ran user {user}: overlapping shards; give each shard once")
                owner[user] = str(s.path)


def merge_files(paths: list[str | Path], expect: int | None = None) -> MergeResult:
    shards = [read_shard(p) for p in paths]
    hashes = {r.settings_hash for s in shards for r in s.records} | {(s.manifest or {}).get("settings_hash") for s in shards}
    hashes.discard(None)
    if len(hashes) > 1:
        raise MergeError(f"the files were made with different settings ({', '.join(sorted(hashes))}); merge one setting at a time")
    check_shards(shards, expect)
    seen: dict[RecordKey, SessionRecord] = {}
    duplicates = []
    for key, r in ((k, r) for s in shards for k, r in latest_by_key(s.records).items()):
        if key in seen:
            duplicates.append((key.user_id, key.session_index, key.trial))
        else:
            seen[key] = r
    have_manifests = all(s.manifest is not None for s in shards)
    expected = {(u, i, t) for s in shards if s.manifest for u in s.manifest["profiles"]["users"]
                for i in range(s.manifest["dataset"]["size"]) for t in range(_trials(s.manifest))}  # fmt: skip
    missing = sorted(expected - {(k.user_id, k.session_index, k.trial) for k in seen}) if have_manifests else []
    merged = sorted(seen.values(), key=lambda r: (r.user_id, r.trial, r.session_index))
    superseded = sum(s.superseded for s in shards)
    return MergeResult(merged, sorted(duplicates), missing, len(expected) if have_manifests else None, superseded, shards)


def merged_manifest(result: MergeResult, output: Path) -> dict:
    """The merged file's manifest: the shards' settings (so a report pairs and pools it like any
    run), every user, how the shards' runs ended, and where it came from."""
    manifests = [s.manifest for s in result.shards if s.manifest]
    users = sorted({u for m in manifests for u in m.get("profiles", {}).get("users", [])} | {r.user_id for r in result.records})
    merged = {
        "from": [{"file": str(s.path.resolve()), "shard": ((s.manifest or {}).get("config") or {}).get("shard"),
                  "sessions": len(s.records)} for s in result.shards],  # fmt: skip
        "sessions": len(result.records), "duplicates": len(result.duplicates), "missing": len(result.missing),
        "superseded": result.superseded, "at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    head = {"output_file": str(output.resolve()), "settings_hash": next((r.settings_hash for r in result.records), None)}
    if not manifests:  # the records alone: a report knows their settings by their hash
        return {**head, "profiles": {"source": "", "users": users}, "merged": merged}
    first = manifests[0]
    ended = sorted({str(m.get("ended")) for m in manifests})
    finished = [m.get("finished") for m in manifests]
    return {
        **{k: v for k, v in first.items() if k != "sessions"},
        **head,
        "settings_hash": first.get("settings_hash") or head["settings_hash"],
        "config": {**(first.get("config") or {}), "shard": None, "output_file": str(output)},
        "profiles": {"source": str((first.get("profiles") or {}).get("source", "")).split(" (shard ")[0], "users": users},
        "started": min(str(m.get("started")) for m in manifests),
        "finished": None if None in finished else max(map(str, finished)),
        "ended": ended[0] if len(ended) == 1 else "mixed: " + ", ".join(ended),
        "merged": merged,
    }


def _trials(manifest: dict) -> int:
    """How many trials of each session a run made (``--trials``; runs before it made one)."""
    return int((manifest.get("config") or {}).get("trials") or 1)


def write_merged(result: MergeResult, output: str | Path) -> None:
    """The merged records (written whole, then moved into place) and their manifest."""
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with RecordWriter(tmp) as writer:
        for r in result.records:
            writer.write(r.to_json_dict())
    tmp.replace(output)
    write_json_atomic(manifest_path(output), merged_manifest(result, output))
