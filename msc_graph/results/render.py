"""Tables as Markdown, HTML and CSV, and the words every report carries (how rows and intervals
are made, what each metric means)."""

from __future__ import annotations

import csv
import html
from pathlib import Path

from msc_graph.results.measures import LATE_FRACTION, METRICS, QUICK_TURNS
from msc_graph.results.paired_tests import EXACT_MAX_USERS
from msc_graph.results.stats import CI_METHOD


def md_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_(none)_\n"
    cell = lambda v: "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |\n" for r in rows)


def html_table(rows: list[dict], columns: list[str], cls: str = "") -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    def cell(value) -> str:
        text = "" if value is None else str(value)
        return f'<td class="t">{html.escape(text)}</td>' if len(text) > 48 else f"<td>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def write_csv(path: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        if not cols:
            return
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def method_note() -> str:
    return (
        "A row is one setting (every setting that changes results, as its manifest records them) on one dataset; "
        "a setting run on several datasets also gets an \"all datasets\" row. Row labels name the settings that "
        "differ between rows (the Settings table lists each in full). Each (setting, user, session) counts once. "
        "Means are over completed sessions; failed sessions are counted under failures, never scored. "
        f"Intervals: {CI_METHOD}; sessions of one user are resampled together. \"per-user\" columns give the mean of "
        "per-user means. Every value says what it rests on: (n = sessions or pairs, users); a subset metric (late-session "
        "success, first-turn enforcement, ...) gives its own n. Sessions are numbered from 1."
    )


def definitions(late_windows: list[str], quick_turns: int = QUICK_TURNS, late_fraction: float = LATE_FRACTION) -> list[str]:
    lines = [f"- **{m.label}**: {m.definition}" for m in METRICS]
    lines = [line.replace(f"at most {QUICK_TURNS} user", f"at most {quick_turns} user") for line in lines]
    lines.append(f"- Late window used: {', '.join(late_windows) or 'n/a'} (the last {late_fraction:.0%} of each user's series, at least one "
                 "session). Late TS has no figure of its own: it is the end of the TS curve.")  # fmt: skip
    lines.append(
        "- The timeout rate, user tokens, successes per 1k user tokens and the paired tests per user follow VARS "
        "(Hao et al., arXiv 2603.20939); late-session success, quick resolution, zero-enforcement success and "
        "first-turn enforcement are defined here as above."
    )
    lines.append(
        "- Paired effects: each pair is one user's session on the same problem under the two settings, both completed; "
        "the interval resamples users; p is a two-sided Wilcoxon signed-rank test over the users' mean differences, "
        f"exact up to {EXACT_MAX_USERS} users (the method is named in each p cell and under the table)."
    )
    lines.append(
        "- Preference tables: a rate is over checks (one session times one preference of the row); \"n\" counts the "
        "checks and \"users\" the users behind them, in the first and the last session."
    )
    return lines
