"""The report's tables, from the session table of :mod:`msc_graph.results.measures`: one row per
setting and dataset (and a pooled "all datasets" row per setting run on several), learning curves
per session index, and paired effects between runs that differ in the compared factor alone."""

from __future__ import annotations

import pandas as pd

from msc_graph.results.measures import METRICS, Metric
from msc_graph.results.paired_tests import signed_rank_test
from msc_graph.results.settings import LoadedResults, Setting, pairing
from msc_graph.results.stats import cluster_ratios, mean_ci

ALL = "all datasets"
#: The study's headline (Llama-3.3-70B-Instruct agent, all five datasets, published protocol), as
#: summarised from it: beside published-protocol rows only, "none" beside no memory, "published"
#: beside the published memory design.
PUBLISHED_HEADLINE = {
    "none": {"task_success": 41.78, "user_effort": 2.98, "length": 15.96},
    "published": {"task_success": 46.38, "user_effort": 1.96, "length": 14.53},
}
#: Settings that belong to a compared factor: a retrieval design's k changes with the design, and a
#: judge compared with another brings its own sampling (and a re-grading says it re-graded).
FACTOR_EXTRAS = {
    "memory": ("retrieval_k", "retrieval_threshold", "embedding"),
    "judge.model": ("judge.temperature", "judge.max_tokens", "judge.structured", "judge.rescored"),
}


def groups(df: pd.DataFrame):
    """(setting, dataset, frame) for each dataset of each setting, then the pooled frame of every
    setting that covers several datasets (dataset ``ALL``)."""
    for (setting, dataset), g in df.groupby(["setting", "dataset"], sort=True):
        yield setting, dataset, g
    for setting, g in df.groupby("setting", sort=True):
        if g["dataset"].nunique() > 1:
            yield setting, ALL, g


def estimates(g: pd.DataFrame, metrics: tuple[Metric, ...] = METRICS, seed: int = 0, per_user: bool = True) -> dict:
    """For each metric over the completed sessions of ``g``: (per-session mean, mean of per-user
    means), each with its interval over users (the per-user mean is None when ``per_user`` is off).
    One bootstrap resamples the users for every per-session mean at once."""
    cols = [f"{m.key}__{part}" for part in ("num", "den") for m in metrics]
    sums = g.groupby("user_id")[cols].sum().to_numpy()
    nums, dens = sums[:, : len(metrics)], sums[:, len(metrics) :]
    sessions = cluster_ratios(nums, dens, seed=seed)
    out = {}
    for i, m in enumerate(metrics):
        sessions[i].n = int(g[f"{m.key}__den"].gt(0).sum())
        user = None
        if per_user:
            has = dens[:, i] > 0
            user = mean_ci(list(nums[has, i] / dens[has, i]), seed=seed).scaled(m.scale)
            user.n = sessions[i].n
        out[m.key] = (sessions[i].scaled(m.scale), user)
    return out


def _failures(g: pd.DataFrame) -> str:
    counts = g.loc[g["failed"], "failure_stage"].value_counts()
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "0"


def summary_rows(df: pd.DataFrame, settings: dict[str, Setting], seed: int = 0) -> list[dict]:
    rows = []
    for sid, dataset, g in groups(df):
        s = settings[sid]
        row: dict = {"dataset": dataset, "setting": s.label, "setting_id": sid, "protocol": s.protocol,
                     "users": int(g["user_id"].nunique()), "sessions": len(g), "completed": int((~g["failed"]).sum()),
                     "failures": _failures(g)}  # fmt: skip
        est = estimates(g, METRICS, seed)
        for m in METRICS:
            session, user = est[m.key]
            row[m.label] = session.fmt_n(digits=m.digits)
            row[f"{m.label} (per-user)"] = user.fmt_n(digits=m.digits)
            for prefix, e in (("", session), ("user_", user)):
                row[f"{m.key}_{prefix}mean"], row[f"{m.key}_{prefix}low"], row[f"{m.key}_{prefix}high"] = e.mean, e.low, e.high
            row[f"{m.key}_n"], row[f"{m.key}_users"] = session.n, session.users
        row["published aggregation"] = _published_aggregation(s, est)
        row["published headline"] = _headline(s)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["dataset"] == ALL, r["dataset"], r["setting"]))


def _published_aggregation(s: Setting, est: dict) -> str:
    """TS and Len as the mean of per-user means, UE pooled over sessions (the published script)."""
    if s.protocol != "published" or est["task_success"][1].mean is None:
        return ""
    ts, ue, length = est["task_success"][1].mean, est["user_effort"][0].mean, est["length"][1].mean
    return f"TS {ts:.1f}%, UE {ue:.2f}, Len {length:.2f}"


def _headline(s: Setting) -> str:
    pub = PUBLISHED_HEADLINE.get(s.memory) if s.protocol == "published" else None
    if not pub:
        return ""
    return f"TS {pub['task_success']}%, UE {pub['user_effort']}, Len {pub['length']} (Llama-3.3-70B, all datasets)"


def curve_rows(df: pd.DataFrame, settings: dict[str, Setting], seed: int = 0) -> list[dict]:
    """Per setting, dataset (and pooled) and session (from 1): each curve metric with its interval."""
    rows = []
    for sid, dataset, g in groups(df):
        for session, gs in g.groupby("session", sort=True):
            row = {"dataset": dataset, "setting": settings[sid].label, "setting_id": sid, "session": int(session),
                   "users": int(gs["user_id"].nunique()), "sessions": len(gs)}  # fmt: skip
            curve_metrics = tuple(m for m in METRICS if m.curve)
            for key, (est, _) in estimates(gs, curve_metrics, seed, per_user=False).items():
                row[key], row[f"{key}_low"], row[f"{key}_high"], row[f"{key}_n"] = est.mean, est.low, est.high, est.n
                row[f"{key}_users"] = est.users
            rows.append(row)
    return rows


def _pair_frame(df: pd.DataFrame, base: str, other: str) -> pd.DataFrame:
    key = ["dataset", "user_id", "session_index", "trial", "problem_id"]  # trial t pairs with trial t
    a = df[(df["setting"] == base) & ~df["failed"]]
    b = df[(df["setting"] == other) & ~df["failed"]]
    return a.merge(b, on=key, how="inner", suffixes=("_a", "_b"))


def _effect_row(pairs: pd.DataFrame, row: dict, seed: int) -> dict:
    """Per metric: the mean difference over pairs (interval over users) and the signed-rank test's p
    over users, each cell with the pairs and users it rests on."""
    row.update(pairs=len(pairs), users=int(pairs["user_id"].nunique()))
    metrics = [m for m in METRICS if m.den is None]  # a ratio of sums has no per-session difference
    diffs = pd.DataFrame({m.key: (pairs[f"{m.num}_b"] - pairs[f"{m.num}_a"]) * m.scale for m in metrics})
    diffs["user_id"] = pairs["user_id"].to_numpy()
    sums, counts = diffs.groupby("user_id").sum(min_count=1).fillna(0.0), diffs.groupby("user_id").count()
    keys = [m.key for m in metrics]
    for m, est in zip(metrics, cluster_ratios(sums[keys].to_numpy(), counts[keys].to_numpy(), seed=seed), strict=True):
        per_user = sums[m.key][counts[m.key] > 0] / counts[m.key][counts[m.key] > 0]
        test = signed_rank_test(list(per_user))
        row[f"d{m.label}"] = est.fmt_n(digits=m.digits, unit="pairs")
        row[f"p {m.label}"] = test.fmt()
        row[f"d_{m.key}_mean"], row[f"d_{m.key}_low"], row[f"d_{m.key}_high"] = est.mean, est.low, est.high
        row[f"d_{m.key}_pairs"], row[f"d_{m.key}_users"] = est.n, est.users
        row[f"p_{m.key}"], row[f"p_{m.key}_method"], row[f"p_{m.key}_users"] = test.p, test.method, test.nonzero
    return row


def effect_rows(
    df: pd.DataFrame, loaded: LoadedResults, compare: str = "memory", baseline: str = "none", seed: int = 0
) -> list[dict]:
    """Each setting whose compared factor is not the baseline, minus the baseline run that differs
    from it in that factor alone, paired by dataset, user, session and problem; a setting without
    such a baseline gets one row saying which settings differ."""
    factor = (compare, *FACTOR_EXTRAS.get(compare, ()))
    value = lambda s: str(s.values.get(compare))  # noqa: E731
    settings = loaded.settings
    bases = [s for s in settings.values() if value(s) == baseline]
    rows = []
    for other in sorted(settings.values(), key=lambda s: s.label):
        if value(other) == baseline or not bases:
            continue
        diffs = {b.id: pairing(b, other, factor) for b in bases}
        base = next((b for b in bases if not diffs[b.id]), None)
        if base is None:
            near = min(bases, key=lambda b: len(diffs[b.id]))
            rows.append({"dataset": "", "comparison": f"{other.label} vs {near.label}", "pairs": 0,
                         "note": "not paired: they also differ in " + "; ".join(diffs[near.id])})  # fmt: skip
            continue
        pairs = _pair_frame(df, base.id, other.id)
        if pairs.empty:
            rows.append({"dataset": "", "comparison": f"{other.label} vs {base.label}", "pairs": 0,
                         "note": "no session was completed by both on the same user, session and problem"})  # fmt: skip
            continue
        for dataset, g in [*pairs.groupby("dataset", sort=True), *([(ALL, pairs)] if pairs["dataset"].nunique() > 1 else [])]:
            row = {"dataset": dataset, "comparison": f"{other.label} vs {base.label}", "note": ""}
            rows.append(_effect_row(g, row, seed))
    return rows


def settings_rows(loaded: LoadedResults, df: pd.DataFrame) -> list[dict]:
    """What each row label stands for: the setting's id, protocol, files and wall time per session."""
    wall = {}
    for r in loaded.records:
        wall.setdefault(r["_setting"], []).append(float((r.get("timing") or {}).get("wall_s") or 0.0))
    rows = []
    for s in sorted(loaded.settings.values(), key=lambda s: s.label):
        times = wall.get(s.id, [])
        rows.append({"setting": s.label, "id": s.id, "protocol": s.protocol,
                     "datasets": ", ".join(sorted(df.loc[df["setting"] == s.id, "dataset"].unique())),
                     "sessions": len(times), "wall s/session": f"{sum(times) / len(times):.1f}" if times else "n/a",
                     "settings hash(es)": ", ".join(sorted(s.hashes)), "files": ", ".join(s.files)})  # fmt: skip
    return rows


def cost_rows(loaded: LoadedResults) -> list[dict]:
    """Model calls and tokens per session and role, per setting (every role the records name)."""
    rows = []
    by_setting: dict[str, list[dict]] = {}
    for r in loaded.records:
        by_setting.setdefault(r["_setting"], []).append(r)
    for sid, recs in sorted(by_setting.items(), key=lambda kv: loaded.settings[kv[0]].label):
        roles: dict[str, dict[str, float]] = {}
        for r in recs:
            for role, u in (r.get("usage") or {}).items():
                acc = roles.setdefault(role, {})
                for k, v in u.items():
                    if isinstance(v, (int, float)):
                        acc[k] = acc.get(k, 0.0) + v
        n = len(recs)
        for role, u in sorted(roles.items()):
            prompt, calls = u.get("prompt_tokens", 0.0), u.get("calls", 0.0)
            rows.append({
                "setting": loaded.settings[sid].label, "role": role, "calls/session": round(calls / n, 2),
                "prompt tok/session": round(prompt / n), "completion tok/session": round(u.get("completion_tokens", 0.0) / n),
                "cache hit": f"{100 * u.get('cached_prompt_tokens', 0.0) / prompt:.1f}%" if prompt else "n/a",
                # what the server computed: prompt tokens its prefix cache did not serve
                "uncached prompt tok/session": round((prompt - u.get("cached_prompt_tokens", 0.0)) / n),
                "latency s/call": f"{u.get('latency_s', 0.0) / calls:.2f}" if calls else "n/a",
            })  # fmt: skip
    return rows
