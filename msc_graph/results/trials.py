"""Repeated trials (``--trials N``): how much one run per session hides.

For settings whose sessions were run more than once:

- TS per trial (every session's trial t), and the mean and spread of those means across trials;
- pass^k (all k of k trials succeed) and pass@k (at least one does), estimated per session from its
  n scored trials with c successes as tau-bench does (unbiased: pass^k = C(c,k)/C(n,k),
  pass@k = 1 - C(n-c,k)/C(n,k)), averaged over the sessions with at least k scored trials, with
  the report's interval (a bootstrap over users);
- the sessions whose TS flips between trials.

A session succeeds when its TS is at least 1 (the published protocol's judge can give more).
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from math import comb

from msc_graph.results import render
from msc_graph.results.settings import Setting
from msc_graph.results.stats import clustered_mean

TRIAL_COLS = ["setting", "dataset", "trials", "sessions", "TS per trial", "TS mean across trials", "TS sd across trials",
              "flipping sessions"]  # fmt: skip
PASS_COLS = ["setting", "dataset", "k", "sessions", "pass^k", "pass@k"]
FLIP_COLS = ["setting", "dataset", "user", "session", "problem", "trials", "successes"]
#: Flipping sessions listed in the Markdown and HTML (all of them are in trials_flips.csv).
FLIPS_SHOWN = 50


def pass_hat_k(n: int, c: int, k: int) -> float:
    """The chance that k trials drawn without replacement from n (c of them successes) all succeed."""
    return comb(c, k) / comb(n, k)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k trials drawn without replacement from n succeeds."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def _succeeded(r: dict) -> int | None:
    ts = r.get("task_success")
    if r.get("failure") or ts is None:
        return None
    return int(float(ts) >= 1)


def trial_groups(records: list[dict]) -> dict[tuple, dict[tuple, dict[int, dict]]]:
    """(setting id, dataset) -> (user, session index) -> trial -> record, for settings with trials."""
    groups: dict[tuple, dict[tuple, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        groups[(r.get("_setting", "?"), r.get("dataset", "?"))][(r["user_id"], int(r["session_index"]))][int(r.get("trial", 0))] = r
    return {key: sessions for key, sessions in groups.items() if any(len(t) > 1 for t in sessions.values())}


def trial_tables(records: list[dict], settings: dict[str, Setting], seed: int = 0) -> dict[str, list[dict]]:
    """The report's trial tables: ``trials`` (one row per setting and dataset), ``pass_k`` and ``flips``."""
    out: dict[str, list[dict]] = {"trials": [], "pass_k": [], "flips": []}
    for (sid, dataset), sessions in sorted(trial_groups(records).items()):
        label = settings[sid].label if sid in settings else sid
        scored = {key: {t: s for t, r in trials.items() if (s := _succeeded(r)) is not None} for key, trials in sessions.items()}
        flips = [(key, sessions[key], got) for key, got in sorted(scored.items()) if len(set(got.values())) > 1]
        out["trials"].append(_spread_row(label, dataset, sessions, scored, len(flips)))
        out["pass_k"] += _pass_rows(label, dataset, scored, seed)
        out["flips"] += [{"setting": label, "dataset": dataset, "user": uid, "session": index + 1,
                          "problem": next(iter(trials.values())).get("problem_id"), "trials": len(got),
                          "successes": sum(got.values())} for (uid, index), trials, got in flips]  # fmt: skip
    return out


def _spread_row(label: str, dataset: str, sessions: dict, scored: dict, flips: int) -> dict:
    per_trial: dict[int, list[int]] = defaultdict(list)
    for got in scored.values():
        for t, s in got.items():
            per_trial[t].append(s)
    means = {t: sum(v) / len(v) for t, v in sorted(per_trial.items()) if v}
    values = list(means.values())
    return {
        "setting": label, "dataset": dataset, "trials": max((len(t) for t in sessions.values()), default=0),
        "sessions": len(sessions),
        "TS per trial": ", ".join(f"{t}: {m:.3f}" for t, m in means.items()),
        "TS mean across trials": round(statistics.fmean(values), 4) if values else None,
        "TS sd across trials": round(statistics.stdev(values), 4) if len(values) > 1 else None,
        "flipping sessions": flips,
    }  # fmt: skip


def _pass_rows(label: str, dataset: str, scored: dict, seed: int) -> list[dict]:
    rows = []
    for k in range(1, max((len(g) for g in scored.values()), default=0) + 1):
        counted = [(uid, len(g), sum(g.values())) for (uid, _), g in scored.items() if len(g) >= k]
        users = [uid for uid, _, _ in counted]
        hat = clustered_mean([pass_hat_k(n, c, k) for _, n, c in counted], users, seed=seed)
        at = clustered_mean([pass_at_k(n, c, k) for _, n, c in counted], users, seed=seed)
        rows.append({"setting": label, "dataset": dataset, "k": k, "sessions": len(counted),
                     "pass^k": hat.fmt(digits=3), "pass@k": at.fmt(digits=3),
                     "pass^k_mean": hat.mean, "pass^k_low": hat.low, "pass^k_high": hat.high,
                     "pass@k_mean": at.mean, "pass@k_low": at.low, "pass@k_high": at.high})  # fmt: skip
    return rows


def trials_note() -> str:
    return (
        "Each session run N times (--trials N; trial 0 sends no sampling seed, trial t > 0 its own seed, and with memory "
        "each trial is a series of its own). pass^k: the chance that k trials of a session all succeed; pass@k: that at "
        "least one does; both estimated per session from its n scored trials with c successes (C(c,k)/C(n,k) and "
        "1 - C(n-c,k)/C(n,k), as tau-bench) and averaged over the sessions with at least k scored trials; a session "
        "succeeds when its TS is at least 1. A flipping session has scored trials that disagree. With temperature 0 and "
        "a deterministic server, trials can only differ where the server ignores the seed or is not deterministic."
    )


def sections(t: dict) -> tuple[str, str]:
    """The report's section on trials as (Markdown, HTML); empty when no setting has trials."""
    if not t["trials"]:
        return "", ""
    flips = t["flips"][:FLIPS_SHOWN]
    more = len(t["flips"]) - len(flips)
    tail = f"{more} more flipping sessions in trials_flips.csv." if more > 0 else ""
    md = "".join([
        "\n## Repeated trials\n", trials_note() + "\n\n", render.md_table(t["trials"], TRIAL_COLS),
        "\npass^k and pass@k of TS [95% CI]:\n\n", render.md_table(t["pass_k"], PASS_COLS),
        "\nSessions whose TS flips between trials:\n\n", render.md_table(flips, FLIP_COLS), tail + "\n",
    ])  # fmt: skip
    page = (f'<h2 id="trials">Repeated trials</h2><p>{html.escape(trials_note())}</p>{render.html_table(t["trials"], TRIAL_COLS)}'
            f'<h3>pass^k and pass@k of TS</h3>{render.html_table(t["pass_k"], PASS_COLS)}'
            f'<h3>Sessions whose TS flips</h3>{render.html_table(flips, FLIP_COLS)}<p>{html.escape(tail)}</p>')  # fmt: skip
    return md, page
