"""Where a report's numbers come from, in one line: the models (user simulator, agent, judge), when
the runs ran, the code they ran (the git commit the run manifests record) and the report's own date
and commit. The report's header and every figure caption carry it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from msc_graph.results.files import read_manifest

ROLES = (("user", "user simulator"), ("agent", "agent"), ("judge", "judge"))


def _git(root: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


@lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of the checkout the package is imported from (``dirty``: with uncommitted changes
    to tracked files); the installed package's version when it is not in a checkout of its own."""
    root = Path(__file__).resolve().parents[2]
    top = _git(root, "rev-parse", "--show-toplevel")
    commit = _git(root, "rev-parse", "HEAD") if top and Path(top).resolve() == root else None
    if commit:
        return {"commit": commit, "dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no"))}
    try:
        return {"version": metadata.version("msc_graph")}
    except metadata.PackageNotFoundError:
        return {"version": "unknown"}


def code_text(code: dict | None) -> str:
    """A code version in words: the commit's first 12 digits (and "+ uncommitted changes"), or the version."""
    if not isinstance(code, dict):
        return "not recorded"
    if code.get("commit"):
        return str(code["commit"])[:12] + (" + uncommitted changes" if code.get("dirty") else "")
    return f"version {code.get('version', 'unknown')}"


@dataclass
class Provenance:
    models: dict[str, list[str]]
    run_dates: list[str]
    run_code: list[str]
    report_date: str
    report_code: str

    def text(self) -> str:
        models = "; ".join(f"{name} {', '.join(self.models[role]) or 'not recorded'}" for role, name in ROLES)
        first, last = (min(self.run_dates), max(self.run_dates)) if self.run_dates else ("", "")
        dates = "dates not recorded" if not first else first if first == last else f"{first} to {last}"
        return (
            f"Models: {models}. Runs: {dates}, code {', '.join(self.run_code)}. "
            f"Report: {self.report_date}, code {self.report_code}."
        )


def _dates(name: str, manifest: dict | None, loaded) -> list[str]:
    """The days a file's run started and finished (its manifest), else the days its sessions started."""
    stamps = [manifest.get(k) for k in ("started", "finished")] if manifest else []
    if not any(stamps):
        sids = {s.id for s in loaded.settings.values() if name in s.files}
        stamps = [(r.get("timing") or {}).get("start") for r in loaded.records if r["_setting"] in sids]
    return [str(s)[:10] for s in stamps if s]


def _file_code(manifest: dict | None) -> str:
    manifest = manifest or {}
    rescored = manifest.get("rescored") or {}
    regraded = f" (re-graded: {code_text(rescored['code'])})" if rescored.get("code") else ""
    return code_text(manifest.get("code")) + regraded


def provenance(loaded) -> Provenance:
    """The :class:`Provenance` of loaded results (``LoadedResults``): models from each setting,
    dates and commits from the manifests beside the files (record start times without one)."""
    settings = loaded.settings.values()
    models = {role: sorted({str(s.values[f"{role}.model"]) for s in settings if s.values.get(f"{role}.model")})
              for role, _ in ROLES}  # fmt: skip
    dates, code = [], set()
    for name in loaded.files:
        manifest = read_manifest(name) if Path(name).is_file() else None
        dates += _dates(name, manifest, loaded)
        code.add(_file_code(manifest))
    return Provenance(
        models, dates, sorted(code), datetime.now(UTC).date().isoformat(), code_text(code_version())
    )
