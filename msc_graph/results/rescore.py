"""Grade the recorded draft answers again with another judge, without running a conversation again.

Each input file gives one new file of the same name in the output folder (the input is never
touched): its counted records (the last one of each user and session), each with the new judge's
verdict, Task Success, judge usage and a ``rescore`` block with the verdict it had before. The new
file's manifest carries the input's settings with the ``judge`` block replaced (and
``judge.rescored: true``), so the records get their own settings hash and a report never pools
them with the originals. The new judge grades with the session graph's own grading call
(``graphs/judge.py: grade``, this project's judge prompt); a draft answer of any JSON type is graded as its text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from msc_graph.config import RoleConfig, settings_hash
from msc_graph.graphs.judge import grade
from msc_graph.records import latest_by_key
from msc_graph.results.files import (
    RecordWriter,
    manifest_path,
    read_manifest,
    read_session_records,
    write_json_atomic,
)
from msc_graph.results.provenance import code_version
from msc_graph.results.stats import CI_METHOD, kappa_ci
from msc_graph.security import redact_tree, redact_url


class RescoreError(ValueError):
    """The command cannot run as asked; nothing was written. The message says why."""


@dataclass
class FileJob:
    source: Path
    target: Path
    records: list[dict]
    manifest: dict | None
    graded: list[dict] = field(default_factory=list)


def plan_files(paths: list[str | Path], out_dir: str | Path, overwrite: bool = False) -> list[FileJob]:
    """Read every input and decide its output path; refuses (``RescoreError``) before writing anything."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RescoreError(f"-o {out} is a file; give a folder")
    jobs, names = [], {}
    inputs = {Path(p).resolve() for p in paths}
    for p in map(Path, paths):
        if not p.is_file():
            raise RescoreError(f"result file {p} does not exist")
        target = out / p.name
        if target.name in names:
            raise RescoreError(f"{p} and {names[target.name]} have the same name; rescore them into different folders")
        names[target.name] = p
        protected = {t.resolve() for t in (target, manifest_path(target))}
        if protected & (inputs | {manifest_path(i) for i in inputs}):
            raise RescoreError(f"{target} is an input of this command; give an -o folder other than the inputs' folder")
        if (target.exists() or manifest_path(target).exists()) and not overwrite:
            raise RescoreError(f"{target} exists; pass --overwrite to replace it, or choose another -o folder")
        manifest = read_manifest(p)
        jobs.append(FileJob(p, target, _counted([r.to_json_dict() for r in read_session_records(p)]), manifest))
    if not any(j.records for j in jobs):
        raise RescoreError("the result files hold no sessions")
    return jobs


def _counted(records: list[dict]) -> list[dict]:
    """The record that counts for each key (``records.latest_by_key``: the last one written)."""
    return sorted(latest_by_key(records).values(), key=lambda r: (r["user_id"], r.get("trial", 0), r["session_index"]))


def graded_draft(r: dict) -> str | None:
    """The draft answer the judge grades: the record's, else the last user turn's (as text)."""
    if r.get("draft_answer") is not None:
        return str(r["draft_answer"])
    for turn in reversed(r.get("turns") or []):
        if turn.get("role") == "user" and turn.get("draft_answer") is not None:
            return str(turn["draft_answer"])
    return None


async def regrade(cfg: RoleConfig, r: dict) -> dict:
    """The record with the new judge's grade (a failure stage before judging keeps the record as it was)."""
    before = {"task_success": r.get("task_success"), "verdict": {k: v for k, v in (r.get("verdict") or {}).items() if k != "raw"},
              "failure": r.get("failure")}  # fmt: skip
    draft = graded_draft(r)
    stage = (r.get("failure") or {}).get("stage")
    if draft is None or (stage is not None and stage != "judge"):
        return {**r, "rescore": {"skipped": "no draft answer to grade" if draft is None else f"failed before judging ({stage})", "before": before}}
    fields, usage = await grade(cfg, r.get("problem", ""), r.get("solution", ""), draft)
    new = {**r, "usage": {**(r.get("usage") or {}), "judge": usage}, "rescore": {"before": before, "judge_model": cfg.model}}
    new.update(failure=None, **fields)
    return new


async def regrade_all(
    cfg: RoleConfig, jobs: list[FileJob], concurrency: int, on_done: Callable[[], None] | None = None
) -> None:
    """Every job's records graded, at most ``concurrency`` judge calls at once."""
    sem = asyncio.Semaphore(concurrency)

    async def one(r: dict) -> dict:
        async with sem:
            out = await regrade(cfg, r)
        if on_done:
            on_done()
        return out

    for job in jobs:
        job.graded = list(await asyncio.gather(*(one(r) for r in job.records)))


def judge_block(cfg: RoleConfig) -> dict:
    return {"model": cfg.model, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "structured": cfg.structured,
            "rescored": True}  # fmt: skip


def write_job(job: FileJob, cfg: RoleConfig, started: str) -> None:
    """The new results file (written whole, then moved into place) and its manifest."""
    old = job.manifest or {}
    settings = old.get("result_settings")
    if isinstance(settings, dict):
        settings = {**settings, "judge": judge_block(cfg)}
        key = settings_hash(settings)
    else:  # no manifest: a hash of the old one and the new judge
        key = settings_hash({"rescored_from": sorted({str(r.get("settings_hash")) for r in job.records}), "judge": judge_block(cfg)})
    job.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.target.with_name(job.target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with RecordWriter(tmp) as writer:
        for r in job.graded:
            writer.write({**r, "settings_hash": key})
    tmp.replace(job.target)
    manifest = {**old, "output_file": str(job.target.resolve()), "settings_hash": key, "result_settings": settings,
                "rescored": {"from": str(job.source.resolve()), "from_settings_hash": old.get("settings_hash"),
                             "judge": {**judge_block(cfg), "api_base": redact_url(cfg.base_url)}, "prompt": "JUDGE_PROMPT",
                             "code": code_version(), "started": started, "finished": datetime.now(UTC).isoformat(), "sessions": len(job.graded)}}  # fmt: skip
    write_json_atomic(manifest_path(job.target), redact_tree(manifest))


#: What the agreement table's kappa interval is (its footnote).
KAPPA_NOTE = (f"kappa: Cohen's kappa of the two judges' TS over the sessions both graded, with its {CI_METHOD} "
              "(a user's sessions are drawn together; no interval with fewer than 2 users).")  # fmt: skip


def agreement_rows(jobs: list[FileJob], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Per file and over all: sessions both judges graded (and their users), agreement %, Cohen's
    kappa with its interval over users, TS before and after; and every session where the two judges differ."""
    rows, differ, pooled = [], [], ([], [], [])
    for job in jobs:
        a, b, users = [], [], []
        for r in job.graded:
            old, new = (r.get("rescore") or {}).get("before", {}).get("task_success"), r.get("task_success")
            if old is None or new is None or "skipped" in r.get("rescore", {}):
                continue
            a.append(int(old))
            b.append(int(new))
            users.append(r["user_id"])  # the cluster, as in the report: a user across files and datasets is one person
            if int(old) != int(new):
                differ.append(_difference(job, r, old, new))
        rows.append(_agreement(str(job.source), (a, b, users), job.graded, seed))
        for whole, part in zip(pooled, (a, b, users), strict=True):
            whole.extend(part)
    if len(jobs) > 1:
        rows.append(_agreement("all files", pooled, [r for j in jobs for r in j.graded], seed))
    return rows, differ


def _agreement(name: str, labels: tuple[list[int], list[int], list], graded: list[dict], seed: int) -> dict:
    a, b, users = labels
    n = len(a)
    kappa = kappa_ci(a, b, users, seed=seed)
    return {
        "file": name, "sessions": len(graded), "graded by both": n, "users": kappa.users,
        "agreement %": f"{100 * sum(x == y for x, y in zip(a, b, strict=True)) / n:.1f}" if n else "n/a",
        "kappa": "n/a" if kappa.mean is None else kappa.fmt(digits=3),
        "kappa_mean": kappa.mean, "kappa_low": kappa.low, "kappa_high": kappa.high,
        "TS before %": f"{100 * sum(a) / n:.1f}" if n else "n/a", "TS after %": f"{100 * sum(b) / n:.1f}" if n else "n/a",
        "0->1": sum(1 for x, y in zip(a, b, strict=True) if x < y), "1->0": sum(1 for x, y in zip(a, b, strict=True) if x > y),
        "new judge failed": sum(1 for r in graded if (r.get("failure") or {}).get("stage") == "judge"),
        "not graded": sum(1 for r in graded if "skipped" in (r.get("rescore") or {})),
    }  # fmt: skip


def _difference(job: FileJob, r: dict, old, new) -> dict:
    before = (r.get("rescore") or {}).get("before", {}).get("verdict") or {}
    return {"file": str(job.source), "dataset": r.get("dataset"), "user": r["user_id"], "session": r["session_index"] + 1,
            "problem": r.get("problem_id"), "before": old, "after": new, "draft answer": graded_draft(r),
            "new judge": (r.get("verdict") or {}).get("reasoning", ""), "old judge": before.get("reasoning", "")}  # fmt: skip


def run_rescore(cfg: RoleConfig, jobs: list[FileJob], concurrency: int, progress: Callable[[], None] | None = None) -> None:
    """Grade and write every job (the caller has checked the endpoint)."""
    started = datetime.now(UTC).isoformat()
    asyncio.run(regrade_all(cfg, jobs, concurrency, progress))
    for job in jobs:
        write_job(job, cfg, started)
