"""Checks of the user simulator, from its own per-turn fields: is it plausible as a user?

Simulated users have been found too cooperative. What the records let us check:

- per preference: in how many user turns the simulator's own check (``preference_<i>_satisfied``)
  read as a violation of it, and in how many of those the turn enforced (``enforce_preferences``);
- how often a turn enforces although no check reads as a violation;
- early termination: sessions the user ended (``ended_by`` terminate) with TS 0;
- across trials of one session: did the simulator enforce in all trials, in none, or in some.

Limits, stated in the report: ``enforce_preferences`` is one flag per turn, not per preference,
so an enforcing turn counts for every preference its checks read as violated; the checks are free
text read by a word heuristic (``metrics.preference_violated``); turns without checks (a person
in the user's seat, another protocol's fields) are left out.
"""

from __future__ import annotations

import html
from collections import defaultdict

from msc_graph.metrics import enforced, preference_violated
from msc_graph.results import render
from msc_graph.results.settings import Setting
from msc_graph.results.stats import clustered_mean

#: The flag's rule: with at least this many turns whose checks read a violation ...
MIN_VIOLATIONS = 20
#: ... a simulator that enforced in fewer than this share of them is flagged as too cooperative.
MIN_ENFORCE_RATE = 0.5

SIM_COLS = ["setting", "violated turns", "enforced when violated", "enforced without a violation", "early termination (TS 0)",
            "sessions over trials", "enforced in all / none / some trials", "flag"]  # fmt: skip
PREF_COLS = ["setting", "preference", "violated turns", "enforced when violated %"]
#: Preference rows in the Markdown and HTML (all of them are in simulator_preferences.csv).
PREF_ROWS_SHOWN = 100


def _checked_turns(r: dict) -> list[tuple[bool, list[bool]]]:
    """Each user turn with checks: (enforced, violated per preference)."""
    n = len(r.get("preferences") or [])
    out = []
    for turn in r.get("turns") or []:
        keys = [f"preference_{i + 1}_satisfied" for i in range(n)]
        if turn.get("role") != "user" or not n or not all(k in turn for k in keys):
            continue
        out.append((enforced(turn), [preference_violated(turn[k]) for k in keys]))
    return out


def simulator_tables(records: list[dict], settings: dict[str, Setting], seed: int = 0) -> dict[str, list[dict]]:
    """``simulator`` (one row per setting) and ``simulator_preferences`` (one row per setting and preference)."""
    by_setting: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if not r.get("failure"):
            by_setting[r.get("_setting", "?")].append(r)
    rows, prefs = [], []
    for sid, recs in sorted(by_setting.items(), key=lambda kv: settings[kv[0]].label if kv[0] in settings else kv[0]):
        label = settings[sid].label if sid in settings else sid
        row, per_pref = _setting_checks(recs, seed)
        rows.append({"setting": label, **row})
        prefs += [{"setting": label, "preference": text, "violated turns": n,
                   "enforced when violated %": round(100 * hit / n, 1)} for text, (n, hit) in sorted(per_pref.items())]  # fmt: skip
    return {"simulator": rows, "simulator_preferences": prefs}


def _setting_checks(recs: list[dict], seed: int) -> tuple[dict, dict[str, tuple[int, int]]]:
    when_violated, when_not, users_v, users_n = [], [], [], []
    per_pref: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in recs:
        for did, violated in _checked_turns(r):
            (when_violated if any(violated) else when_not).append(float(did))
            (users_v if any(violated) else users_n).append(r["user_id"])
            for text, bad in zip(r.get("preferences") or [], violated, strict=False):
                if bad:
                    per_pref[text][0] += 1
                    per_pref[text][1] += int(did)
    rate = clustered_mean(when_violated, users_v, seed=seed)
    plain = clustered_mean(when_not, users_n, seed=seed)
    early = clustered_mean([float(_early(r)) for r in recs], [r["user_id"] for r in recs], seed=seed)
    all_, none, some, n = _consistency(recs)
    flag = ""
    if len(when_violated) >= MIN_VIOLATIONS and (rate.mean or 0.0) < MIN_ENFORCE_RATE:
        flag = f"implausibly cooperative: enforced in {rate.mean:.0%} of turns its own checks call a violation"
    return {
        "violated turns": len(when_violated),
        "enforced when violated": rate.scaled(100).fmt(digits=1) + " %" if rate.mean is not None else "n/a",
        "enforced without a violation": plain.scaled(100).fmt(digits=1) + " %" if plain.mean is not None else "n/a",
        "early termination (TS 0)": early.scaled(100).fmt(digits=1) + " %" if early.mean is not None else "n/a",
        "sessions over trials": n,
        "enforced in all / none / some trials": f"{all_} / {none} / {some}" if n else "n/a",
        "flag": flag,
        "enforce_rate_mean": rate.mean, "enforce_rate_low": rate.low, "enforce_rate_high": rate.high,
    }, {k: (v[0], v[1]) for k, v in per_pref.items()}  # fmt: skip


def _early(r: dict) -> bool:
    """The user ended the session and the judge found the answer wrong."""
    ts = r.get("task_success")
    return r.get("ended_by") == "terminate" and ts is not None and float(ts) < 1


def _consistency(recs: list[dict]) -> tuple[int, int, int, int]:
    """Sessions with two or more completed trials: enforced in all, none, some of them; and how many."""
    trials: dict[tuple, list[bool]] = defaultdict(list)
    for r in recs:
        trials[(r.get("dataset"), r["user_id"], r["session_index"])].append(int(r.get("user_effort") or 0) > 0)
    many = [v for v in trials.values() if len(v) > 1]
    return sum(all(v) for v in many), sum(not any(v) for v in many), sum(any(v) and not all(v) for v in many), len(many)


def simulator_note() -> str:
    return (
        "From the simulator's own fields. Enforced when violated: of the user turns in which the simulator's check of "
        "some preference reads as a violation, the share that enforced (interval over users); enforced without a "
        "violation: the same for turns whose checks read as satisfied. The per-turn enforcement flag is one for the "
        "turn, not per preference: a turn is attributed to every preference its checks call violated, and the checks "
        "are free text read by a word heuristic. Early termination: completed sessions the user ended itself with TS "
        f"below 1. Flag rule: at least {MIN_VIOLATIONS} violated turns and enforcement in fewer than "
        f"{MIN_ENFORCE_RATE:.0%} of them. Across trials (enforced = User Effort above 0): sessions with two or more "
        "completed trials."
    )


def sections(t: dict) -> tuple[str, str]:
    """The report's section on the simulator as (Markdown, HTML)."""
    rows, prefs = t["simulator"], t["simulator_preferences"]
    flagged = [r for r in rows if r.get("flag")]
    verdict = (f"{len(flagged)} setting(s) flagged: " + "; ".join(f"{r['setting']}: {r['flag']}" for r in flagged)
               if flagged else "No setting flagged.")  # fmt: skip
    md = "".join([
        "\n## User simulator checks\n", simulator_note() + "\n\n", verdict + "\n\n", render.md_table(rows, SIM_COLS),
        "\nPer preference (full text):\n\n", render.md_table(prefs[:PREF_ROWS_SHOWN], PREF_COLS),
    ])  # fmt: skip
    page = (f'<h2 id="simulator">User simulator checks</h2><p>{html.escape(simulator_note())}</p><p>{html.escape(verdict)}</p>'
            f'{render.html_table(rows, SIM_COLS)}<h3>Per preference</h3>{render.html_table(prefs[:PREF_ROWS_SHOWN], PREF_COLS)}')
    return md, page
