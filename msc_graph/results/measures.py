"""What the report measures per session: the benchmark's three metrics and the interaction metrics
the field reports since VARS (arXiv 2603.20939), as one table of sessions (pandas).

Every metric is a ratio ``sum(numerator) / sum(denominator)`` over completed sessions (a mean has a
denominator of 1 per session), so one rule gives the per-session mean, the mean of per-user means
and the bootstrap over users (:mod:`msc_graph.results.stats`). Failed sessions are in the table
(counted as failures) with no metric values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from msc_graph.metrics import enforced


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    #: What the figure's axis and the tables multiply by (rates as percentages).
    scale: float
    #: Column of the session table summed over sessions; ``den`` likewise (None: one per session).
    num: str
    den: str | None
    higher_is_better: bool
    definition: str
    #: Whether it gets a learning curve over session index.
    curve: bool = True

    @property
    def percent(self) -> bool:
        return self.scale == 100.0

    @property
    def digits(self) -> int:
        return 1 if self.percent or self.key == "user_tokens" else 2


QUICK_TURNS = 4
LATE_FRACTION = 0.25

METRICS: tuple[Metric, ...] = (
    Metric("task_success", "TS %", 100.0, "ts", None, True,
           "Task Success: the judge's grade of the user's final draft answer (0/1; under the published "
           "protocol the judge's integer is taken as it is)."),
    Metric("user_effort", "UE", 1.0, "ue", None, False,
           "User Effort: user turns that enforced a preference."),
    Metric("length", "Len", 1.0, "length", None, False,
           "Length: messages in the session, the agent's opening and the user's last message included."),
    Metric("timeout", "Timeout %", 100.0, "timeout", None, False,
           "Timeout rate: sessions that used every turn without the user ending them (ended by max_turns)."),
    Metric("user_tokens", "User tok/session", 1.0, "user_tokens", None, False,
           "User tokens per session: completion tokens the user simulator wrote in the session."),
    Metric("success_per_1k", "Succ/1k user tok", 1.0, "ts_tok", "user_tokens_k", True,
           "Successes per 1k user tokens: the sum of TS over the sum of user tokens, times 1,000."),
    Metric("late_success", "Late TS %", 100.0, "late_ts", None, True,
           "Late-session success: TS over the late window of each user's series (the window used is stated below).",
           curve=False),
    Metric("quick_resolution", "Quick %", 100.0, "quick", None, True,
           f"Quick resolution: sessions solved (TS > 0) within at most {QUICK_TURNS} user turns."),
    Metric("zero_enforcement", "Zero-enf. success %", 100.0, "zero_enf", None, True,
           "Zero-enforcement success: sessions solved with no enforcement at all (UE = 0)."),
    Metric("first_turn_enforcement", "First-turn enf. %", 100.0, "first_enf", None, False,
           "First-turn enforcement: the user's first turn after the agent's first reply enforced a "
           "preference (sessions without such a turn are left out)."),
)  # fmt: skip
BY_KEY = {m.key: m for m in METRICS}
HEADLINE = ("task_success", "user_effort", "length")
INTERACTION = tuple(m.key for m in METRICS if m.key not in HEADLINE)


def first_turn_enforced(turns: list[dict]) -> float:
    """1/0: the first user turn after the first agent turn enforced a preference; NaN: none such."""
    seen_agent = False
    for turn in turns:
        if turn.get("role") == "agent":
            seen_agent = True
        elif turn.get("role") == "user" and seen_agent:
            return float(enforced(turn))
    return math.nan


def _user_tokens(r: dict) -> float:
    usage = (r.get("usage") or {}).get("user") or {}
    tokens = usage.get("completion_tokens")
    return float(tokens) if tokens else math.nan


def session_row(r: dict, quick_turns: int = QUICK_TURNS) -> dict:
    """The table row of one record."""
    failure = r.get("failure") or None
    row = {
        "setting": r.get("_setting", "?"), "dataset": r.get("dataset", "?"), "user_id": r["user_id"],
        "session_index": int(r["session_index"]), "trial": int(r.get("trial", 0)), "problem_id": r.get("problem_id"),
        "failed": failure is not None, "failure_stage": (failure or {}).get("stage"),
    }  # fmt: skip
    if failure is not None or r.get("task_success") is None:
        row["failed"] = True
        row["failure_stage"] = row["failure_stage"] or "judge"
        return row
    ts = float(r["task_success"])
    ue = float(r.get("user_effort") or 0)
    user_turns = sum(1 for t in r.get("turns") or [] if t.get("role") == "user")
    tokens = _user_tokens(r)
    row.update(
        ts=ts, ue=ue, length=float(r.get("length") or 0), timeout=float(r.get("ended_by") == "max_turns"),
        user_tokens=tokens, ts_tok=ts if not math.isnan(tokens) else math.nan, user_tokens_k=tokens / 1000.0,
        quick=float(ts > 0 and user_turns <= quick_turns), zero_enf=float(ts > 0 and ue == 0),
        first_enf=first_turn_enforced(r.get("turns") or []),
    )  # fmt: skip
    return row


def session_table(records: list[dict], *, quick_turns: int = QUICK_TURNS, late_fraction: float = LATE_FRACTION) -> pd.DataFrame:
    """One row per record; ``late_ts`` is TS in the late window of its (setting, dataset)."""
    df = pd.DataFrame([session_row(r, quick_turns) for r in records])
    for col in ("ts", "ue", "length", "timeout", "user_tokens", "ts_tok", "user_tokens_k", "quick", "zero_enf", "first_enf"):
        if col not in df:
            df[col] = math.nan
    df["session"] = df["session_index"] + 1
    n_sessions = df.groupby(["setting", "dataset"])["session_index"].transform("max") + 1
    late_from = n_sessions - (n_sessions * late_fraction).clip(lower=1).astype(int)
    df["late"] = df["session_index"] >= late_from
    df["late_ts"] = df["ts"].where(df["late"])
    for m in METRICS:
        num = df[m.num].astype(float)
        den = df[m.den].astype(float) if m.den else pd.Series(1.0, index=df.index)
        ok = num.notna() & den.notna() & (den > 0)
        df[f"{m.key}__num"] = num.where(ok, 0.0)
        df[f"{m.key}__den"] = den.where(ok, 0.0)
    return df


def late_windows(df: pd.DataFrame) -> list[str]:
    """The late windows used, in words (sessions numbered from 1)."""
    out = set()
    for _, g in df.groupby(["setting", "dataset"]):
        n = int(g["session_index"].max()) + 1
        first = int(g.loc[g["late"], "session"].min()) if g["late"].any() else n
        out.add(f"sessions {first}-{n} of {n}" if first < n else f"session {n} of {n}")
    return sorted(out)

