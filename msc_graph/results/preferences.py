"""Learning per preference: how often each preference (and each preference category) had to be
enforced, by session, per setting; texts in full."""

from __future__ import annotations

import pandas as pd

from msc_graph.metrics import enforced_preferences
from msc_graph.results.settings import Setting
from msc_graph.results.stats import cluster_ratios

COLUMNS = ["setting", "dataset", "user_id", "session", "category", "preference", "enforced"]


def preference_table(records: list[dict]) -> pd.DataFrame:
    """One row per (completed session, preference of its user): whether that preference was enforced."""
    rows = []
    for r in records:
        if r.get("failure"):
            continue
        prefs = r.get("preferences") or []
        cats = list(r.get("categories") or [])
        cats += ["(none)"] * (len(prefs) - len(cats))
        hit = set(enforced_preferences(r))
        for i, text in enumerate(prefs):
            rows.append((r.get("_setting", "?"), r.get("dataset", "?"), r["user_id"], int(r["session_index"]) + 1,
                         cats[i] or "(none)", text, float(i in hit)))  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def category_curves(pt: pd.DataFrame, settings: dict[str, Setting], seed: int = 0) -> list[dict]:
    """Enforcement rate (%) per setting, category and session, pooled over datasets; the interval
    resamples users (one bootstrap per setting and session for all its categories)."""
    rows = []
    for (sid, session), g in pt.groupby(["setting", "session"], sort=True):
        table = g.pivot_table(index="user_id", columns="category", values="enforced", aggfunc=["sum", "count"], fill_value=0)
        cats = list(table["sum"].columns)
        sessions = g.drop_duplicates(["dataset", "user_id", "category"]).groupby("category").size()
        for cat, est in zip(cats, cluster_ratios(table["sum"].to_numpy(), table["count"].to_numpy(), seed=seed), strict=True):
            est = est.scaled(100.0)
            rows.append({"setting": settings[sid].label, "setting_id": sid, "category": cat, "session": int(session),
                         "rate %": est.mean, "low": est.low, "high": est.high, "users": est.users, "sessions": int(sessions[cat]),
                         "checks": est.n})  # fmt: skip
    return sorted(rows, key=lambda r: (r["setting"], r["category"], r["session"]))


def _first_last(pt: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys``: the enforcement rate in the first and the last session the group has, each with
    its n (checks: a session times a preference of the group) and its users."""
    per = pt.groupby([*keys, "session"]).agg(mean=("enforced", "mean"), count=("enforced", "size"), users=("user_id", "nunique"))
    per = per.reset_index()
    first = per.loc[per.groupby(keys)["session"].idxmin()].set_index(keys)
    last = per.loc[per.groupby(keys)["session"].idxmax()].set_index(keys)
    out = pd.DataFrame({
        "first session": first["session"], "rate first %": (100 * first["mean"]).round(1), "n first": first["count"],
        "users first": first["users"],
        "last session": last["session"], "rate last %": (100 * last["mean"]).round(1), "n last": last["count"],
        "users last": last["users"],
    })  # fmt: skip
    out["change (pp)"] = (out["rate last %"] - out["rate first %"]).round(1)
    return out.reset_index()


def _labelled(frame: pd.DataFrame, settings: dict[str, Setting]) -> list[dict]:
    frame = frame.assign(setting=frame["setting"].map(lambda s: settings[s].label))
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict("records")]


def category_summary(pt: pd.DataFrame, settings: dict[str, Setting]) -> list[dict]:
    """Per setting and category: the enforcement rate in the first and the last session."""
    if pt.empty:
        return []
    return _labelled(_first_last(pt, ["setting", "category"]), settings)


def preference_rows(pt: pd.DataFrame, settings: dict[str, Setting]) -> list[dict]:
    """Per setting and preference (full text): the enforcement rate in the first and the last session."""
    if pt.empty:
        return []
    rows = _labelled(_first_last(pt, ["setting", "category", "preference"]), settings)
    return sorted(rows, key=lambda r: (r["setting"], r["change (pp)"]))
