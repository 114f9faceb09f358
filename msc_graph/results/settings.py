"""Which setting each record belongs to, and which records count.

A *setting* is everything that changes results except the dataset: the ``result_settings`` of the
manifest beside a results file, less its ``dataset`` key (so one setting run on several datasets can
be pooled). A file without a manifest falls back to what its records carry; its settings are then
known only by their hash, which includes the dataset, so such a setting is never pooled across
datasets or paired with another.

Which records count: in one file, the last record of a key (``records.record_key``: settings hash,
dataset, user, session, trial; a record without ``trial`` is trial 0) is the one that counts (a failed session run again supersedes its earlier
attempt, as resume reads it). The same key in two files (two runners on one setting, merged
overlapping shards) is a duplicate: the first file given wins and the others are dropped and
reported. The same key with two different profiles is no duplicate but two settings that older
versions hashed alike (the profile set keys results now): that is refused, never paired.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from msc_graph.records import RecordKey, latest_by_key
from msc_graph.results.files import ResultsError, read_manifest, read_records

#: Keys of ``result_settings`` that are about the data, not the setting.
DATA_KEYS = ("dataset",)
#: Settings every row label shows even when all rows share them.
ALWAYS_SHOWN = ("memory",)
#: Keys a manifest writes only when they are not their default (``spec.Spec.only_if_changed``,
#: ``run/plan.py: content_keys``).
OPTIONAL_DEFAULTS = {"protocol": "ours", "split": "test", "user_kind": "simulated", "profile_set": "built-in",
                     "dataset_content": "known sample", "reflection_model": "(the agent)"}  # fmt: skip


@dataclass
class Setting:
    """One setting: its flattened settings, a short id, a label made from what differs."""

    id: str
    values: dict
    from_manifest: bool
    hashes: set[str] = field(default_factory=set)
    files: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def protocol(self) -> str:
        return str(self.values.get("protocol", "ours" if self.from_manifest else "unknown"))

    @property
    def memory(self) -> str:
        return str(self.values.get("memory", "none"))


@dataclass
class LoadedResults:
    """The records that count, each tagged with ``_setting`` (a :class:`Setting` id), and what was dropped."""

    records: list[dict]
    settings: dict[str, Setting]
    superseded: int = 0
    duplicates: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    no_manifest: list[str] = field(default_factory=list)

    @classmethod
    def from_records(cls, records: list[dict]) -> LoadedResults:
        """Records without their files: settings from the records, later records supersede earlier ones."""
        return _collect([("the records given", records, None)])


def flatten(payload: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _setting_values(result_settings: dict | None, record: dict) -> tuple[dict, bool]:
    if result_settings is not None:
        values = {**OPTIONAL_DEFAULTS, **{k: v for k, v in result_settings.items() if k not in DATA_KEYS}}
        return flatten(values), True
    values = {"memory": record.get("memory", "none"), "agent.model": record.get("agent_model"),
              "user.model": record.get("user_model"), "settings_hash": record.get("settings_hash")}  # fmt: skip
    return values, False


def _id_of(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _read_manifest(path: Path) -> dict | None:
    data = read_manifest(path)
    return data if data and isinstance(data.get("result_settings"), dict) else None


def load_results(paths: list[str | Path]) -> LoadedResults:
    """Read result files and their manifests; a missing or corrupt file raises ``ResultsError``."""
    given: list[tuple[str, list[dict], dict | None]] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_file():
            raise ResultsError(f"result file {path} does not exist")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        given.append((str(path), read_records(path), _read_manifest(path)))
    return _collect(given)


def _collect(given: list[tuple[str, list[dict], dict | None]]) -> LoadedResults:
    settings: dict[str, Setting] = {}
    kept: dict[RecordKey, dict] = {}
    owner: dict[RecordKey, str] = {}
    out = LoadedResults([], settings, files=[name for name, _, _ in given])
    for name, records, manifest in given:
        if manifest is None:
            out.no_manifest.append(name)
        latest = latest_by_key(records)
        out.superseded += len(records) - len(latest)
        for key, r in latest.items():
            if key in kept:
                _check_same_profile(kept[key], r, owner[key], name)
                out.duplicates.append({"file": name, "kept_from": owner[key], "user_id": key.user_id,
                                       "session_index": key.session_index})  # fmt: skip
                continue
            usable = manifest if manifest and manifest.get("settings_hash") == r.get("settings_hash") else None
            values, from_manifest = _setting_values(usable and manifest["result_settings"], r)
            sid = _id_of(values)
            setting = settings.setdefault(sid, Setting(sid, values, from_manifest))
            setting.hashes.add(str(r.get("settings_hash")))
            if name not in setting.files:
                setting.files.append(name)
            kept[key], owner[key] = {**r, "_setting": sid}, name
    out.records = list(kept.values())
    label_settings(list(settings.values()))
    return out


def _check_same_profile(kept: dict, other: dict, kept_from: str, name: str) -> None:
    """One key in two files is a duplicate only if it is the same user: records made before the
    profile set keyed results share a hash across profile sets, and are two settings, not one."""
    if kept.get("profile_hash") != other.get("profile_hash"):
        raise ResultsError(
            f"{kept_from} and {name} hold user {other['user_id']} under one settings hash "
            f"({other.get('settings_hash')}) with different profiles: runs over two profile sets, made before "
            "the profile set keyed results. Report them separately, or rerun one with this version"
        )


def differing_keys(settings: list[Setting]) -> list[str]:
    """The flattened settings keys whose values differ between the settings that have them (a key
    only some designs have, such as ``retrieval_k``, differs only when two of them disagree)."""
    keys = sorted({k for s in settings for k in s.values})
    values = lambda k: {json.dumps(s.values[k], default=str) for s in settings if k in s.values}  # noqa: E731
    return [k for k in keys if len(values(k)) > 1]


def _fmt(value) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 40 else text[:18] + "..." + text[-18:]


def label_settings(settings: list[Setting]) -> None:
    """Label each setting by the settings that differ between them (memory always shown)."""
    differ = [k for k in differing_keys(settings) if k not in ALWAYS_SHOWN]
    for s in settings:
        parts = [f"{k}={_fmt(s.values[k])}" for k in (*ALWAYS_SHOWN, *differ) if k in s.values]
        s.label = ", ".join(dict.fromkeys(parts))
    seen: dict[str, int] = {}
    for s in settings:  # settings that differ only in keys a label cannot show still get two labels
        seen[s.label] = seen.get(s.label, 0) + 1
    for s in settings:
        if seen[s.label] > 1:
            s.label += f" [{s.id}]"


def pairing(base: Setting, other: Setting, factor_keys: tuple[str, ...]) -> list[str]:
    """The settings (other than ``factor_keys``) in which two settings differ; empty: they pair."""
    if not (base.from_manifest and other.from_manifest):
        return ["unknown (no manifest beside a results file)"]
    keys = sorted((set(base.values) | set(other.values)) - set(factor_keys))
    return [
        f"{k} ({_fmt(base.values.get(k))} vs {_fmt(other.values.get(k))})"
        for k in keys
        if base.values.get(k) != other.values.get(k)
    ]
