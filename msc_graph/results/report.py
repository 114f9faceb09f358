"""Turn result files into numbers you can publish: does memory help, how fast, at what cost.

``build_report(results, out_dir)`` (results: :func:`msc_graph.results.settings.load_results` of the
files, or plain records) writes ``report.md``, one self-contained ``report.html`` (tables, figures
inlined, the transcript viewer), CSVs (``summary``, ``effects``, ``curves``, ``categories``,
``preferences``, ``costs``, ``settings``, and ``dropped`` when records were dropped) and a figure per
metric as PNG, SVG and PDF, and returns the tables.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

from msc_graph.results import figures, preferences, render, simulator, tables, trials
from msc_graph.results.measures import (
    HEADLINE,
    INTERACTION,
    LATE_FRACTION,
    METRICS,
    QUICK_TURNS,
    late_windows,
    session_table,
)
from msc_graph.results.paired_tests import METHOD_NOTE
from msc_graph.results.provenance import provenance
from msc_graph.results.settings import LoadedResults
from msc_graph.results.tables import PUBLISHED_HEADLINE
from msc_graph.results.viewer import Which, viewer_data, viewer_html
from msc_graph.results.viewer_page import VIEWER_CSS

__all__ = ["PUBLISHED_HEADLINE", "ReportOptions", "build_report"]

LABEL = {m.key: m.label for m in METRICS}
SUMMARY_COLS = ["dataset", "setting", "users", "sessions", "completed", *(LABEL[k] for k in HEADLINE), "failures"]
PUBLISHED_COLS = ["published aggregation", "published headline"]
USER_COLS = ["dataset", "setting", "users", *(f"{LABEL[k]} (per-user)" for k in HEADLINE)]
INTERACTION_COLS = ["dataset", "setting", *(LABEL[k] for k in INTERACTION)]
EFFECT_COLS = ["dataset", "comparison", "pairs", "users", *(c for k in HEADLINE for c in (f"d{LABEL[k]}", f"p {LABEL[k]}")), "note"]
EFFECT_MORE = ["dataset", "comparison", *(c for m in METRICS if m.den is None and m.key not in HEADLINE for c in (f"d{m.label}", f"p {m.label}"))]
CATEGORY_COLS = ["setting", "category", "rate first %", "n first", "users first", "rate last %", "n last", "users last",
                 "change (pp)"]  # fmt: skip
PREF_COLS = ["setting", "category", "preference", "rate first %", "n first", "users first", "rate last %", "n last", "users last",
             "change (pp)"]  # fmt: skip
COST_COLS = ["setting", "role", "calls/session", "prompt tok/session", "completion tok/session", "cache hit",
             "uncached prompt tok/session", "latency s/call"]  # fmt: skip
#: Preferences shown in the Markdown and HTML tables (all of them are in preferences.csv).
PREF_ROWS_SHOWN = 200
#: Tables written only when they have rows: table -> CSV name.
EXTRA_CSVS = {"dropped": "dropped", "trials": "trials", "pass_k": "pass_k", "flips": "trials_flips",
              "simulator": "simulator", "simulator_preferences": "simulator_preferences"}  # fmt: skip
SETTING_COLS = ["setting", "id", "protocol", "datasets", "sessions", "wall s/session", "settings hash(es)", "files"]


@dataclass
class ReportOptions:
    compare: str = "memory"
    baseline: str = "none"
    seed: int = 0
    quick_turns: int = QUICK_TURNS
    late_fraction: float = LATE_FRACTION
    transcripts: Which = "all"


def compute(loaded: LoadedResults, o: ReportOptions) -> dict:
    df = session_table(loaded.records, quick_turns=o.quick_turns, late_fraction=o.late_fraction)
    st = loaded.settings
    pt = preferences.preference_table(loaded.records)
    return {
        "frame": df, "late_windows": late_windows(df),
        "summary": tables.summary_rows(df, st, o.seed), "curves": tables.curve_rows(df, st, o.seed),
        "effects": tables.effect_rows(df, loaded, o.compare, o.baseline, o.seed),
        "categories": preferences.category_curves(pt, st, o.seed), "category_summary": preferences.category_summary(pt, st),
        "preferences": preferences.preference_rows(pt, st), "costs": tables.cost_rows(loaded),
        "settings": tables.settings_rows(loaded, df),
        "dropped": [{"reason": "duplicate", **d} for d in loaded.duplicates],
        **trials.trial_tables(loaded.records, st, o.seed), **simulator.simulator_tables(loaded.records, st, o.seed),
    }  # fmt: skip


def build_report(results: LoadedResults | list[dict], out_dir: str | Path, options: ReportOptions | None = None) -> dict:
    o = options or ReportOptions()
    loaded = results if isinstance(results, LoadedResults) else LoadedResults.from_records(list(results))
    if not loaded.records:
        raise ValueError("no sessions to report on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = compute(loaded, o)
    for name in ("summary", "effects", "curves", "categories", "preferences", "costs", "settings"):
        render.write_csv(out / f"{name}.csv", t[name])
    for name, csv_name in EXTRA_CSVS.items():
        if t[name]:
            render.write_csv(out / f"{csv_name}.csv", t[name])
    labels = {s.id: s.label for s in loaded.settings.values()}
    t["provenance"] = provenance(loaded).text()
    plots = figures.metric_figures(t["curves"], labels, out, t["provenance"])
    t["plots"] = plots + figures.category_figure(t["categories"], labels, out, t["provenance"])
    data_note = _data_note(loaded)
    (out / "report.md").write_text(_markdown(t, data_note, o), encoding="utf-8")
    index, chunks = viewer_data(loaded.records, loaded.settings, o.transcripts)
    (out / "report.html").write_text(_html(t, data_note, o, viewer_html(index, chunks)), encoding="utf-8")
    t.pop("frame")
    return t


def _data_note(loaded: LoadedResults) -> str:
    parts = [f"{len(loaded.records)} sessions counted from {len(loaded.files)} file(s)."]
    if loaded.superseded:
        parts.append(f"{loaded.superseded} earlier attempt(s) of sessions that were run again are superseded by the later record.")
    if loaded.duplicates:
        parts.append(f"{len(loaded.duplicates)} duplicate record(s) (the same setting, user and session in two files) "
                     "were dropped; the first file given wins (listed in dropped.csv).")  # fmt: skip
    above = sum(1 for r in loaded.records if isinstance(r.get("task_success"), (int, float)) and r["task_success"] > 1)
    if above:
        parts.append(f"{above} session(s) carry a judge accuracy above 1 (the published protocol keeps the judge's integer "
                     "as it is); TS counts them as recorded, as the published aggregation does.")  # fmt: skip
    if loaded.no_manifest:
        parts.append(f"No manifest beside {', '.join(loaded.no_manifest)}: their settings are known by hash only, so they "
                     "are neither pooled across datasets nor paired.")  # fmt: skip
    return " ".join(parts)


def _summary_columns(t: dict) -> list[str]:
    published = any(r.get("published aggregation") for r in t["summary"])
    return SUMMARY_COLS + (PUBLISHED_COLS if published else [])


def _markdown(t: dict, data_note: str, o: ReportOptions) -> str:
    md = render.md_table
    pngs = [p for p in t["plots"] if p.suffix == ".png"]
    parts = [
        "# MultiSessionCollab report\n", t["provenance"] + "\n\n", render.method_note() + "\n", data_note + "\n",
        "\n## Settings\n", md(t["settings"], SETTING_COLS),
        "\n## Results (per-session mean [95% CI])\n", md(t["summary"], _summary_columns(t)),
        "\n## Mean of per-user means [95% CI]\n", md(t["summary"], USER_COLS),
        "\n## Interaction metrics\n", md(t["summary"], INTERACTION_COLS),
        f"\n## Paired effects ({o.compare} vs {o.baseline})\n", md(t["effects"], EFFECT_COLS),
        "\nThe same pairs, interaction metrics:\n\n", md([r for r in t["effects"] if r.get("pairs")], EFFECT_MORE),
        f"\n{METHOD_NOTE}\n",
        "\n## Learning curves\n", *(f"![{p.stem}]({p.name})\n\n" for p in pngs),
        "\n## Learning per preference category (enforcement rate, first vs last session)\n",
        md(t["category_summary"], CATEGORY_COLS),
        "\n## Preferences (full text; enforcement rate, first vs last session)\n", md(t["preferences"][:PREF_ROWS_SHOWN], PREF_COLS),
        _more_preferences(t),
        "\n## Cost\n", md(t["costs"], COST_COLS), trials.sections(t)[0], simulator.sections(t)[0],
        "\n## Definitions\n", "\n".join(render.definitions(t["late_windows"], o.quick_turns, o.late_fraction)) + "\n",
        "\nThe conversations themselves: open report.html (Transcripts).\n",
    ]  # fmt: skip
    return "".join(parts)


def _more_preferences(t: dict) -> str:
    more = len(t["preferences"]) - PREF_ROWS_SHOWN
    return f"\n{more} more preference rows in preferences.csv.\n" if more > 0 else ""


def _img(path: Path) -> str:
    """A figure; each of its points (its point map) a link to the sessions it stands for."""
    data = base64.b64encode(path.read_bytes()).decode()
    where = figures.points_path(path)
    points = json.loads(where.read_text(encoding="utf-8")) if where.is_file() else []
    links = "".join(
        f'<a class="point" style="left:{p["left"]}%;top:{p["top"]}%" href="#transcripts" data-setting="{html.escape(p["setting"])}" '
        f'data-dataset="{html.escape(p["dataset"])}" data-session="{p["session"]}" '
        f'title="{html.escape(p["setting"])}, session {p["session"]}: {p["value"]} (click: its sessions)"></a>'
        for p in points
    )
    return f'<figure class="plot"><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">{links}</figure>'


PAGE_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;max-width:1500px}nav a{margin-right:1em}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #bbb;padding:3px 7px;font-size:13px;vertical-align:top;white-space:nowrap}
td.t{white-space:normal;min-width:22em}th{background:#eee;white-space:normal}img{max-width:min(100%,1200px)}
figure{margin:1em 0}.wide{overflow-x:auto}figure.plot{position:relative;display:inline-block;max-width:min(100%,1200px)}
figure.plot img{display:block;width:100%}a.point{position:absolute;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%}
a.point:hover,a.point:focus{outline:2px solid #000}"""


def _html(t: dict, data_note: str, o: ReportOptions, viewer: str) -> str:
    h = lambda rows, cols: f'<div class="wide">{render.html_table(rows, cols)}</div>'  # noqa: E731
    defs = "".join(f"<li>{html.escape(line[2:].replace('**', ''))}</li>" for line in render.definitions(t["late_windows"], o.quick_turns, o.late_fraction))
    nav = "".join(f'<a href="#{a}">{n}</a>' for a, n in (("results", "Results"), ("effects", "Effects"), ("curves", "Figures"),
                  ("categories", "Preferences"), ("cost", "Cost"), ("simulator", "Simulator"), ("settings", "Settings"), ("transcripts", "Transcripts")))  # fmt: skip
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>MultiSessionCollab report</title>
<style>{PAGE_CSS}{VIEWER_CSS}</style></head><body><h1>MultiSessionCollab report</h1><nav>{nav}</nav>
<p id="provenance">{html.escape(t["provenance"])}</p><p>{html.escape(render.method_note())}</p><p>{html.escape(data_note)}</p>
<h2 id="results">Results (per-session mean [95% CI])</h2>{h(t["summary"], _summary_columns(t))}
<h3>Mean of per-user means [95% CI]</h3>{h(t["summary"], USER_COLS)}
<h3>Interaction metrics</h3>{h(t["summary"], INTERACTION_COLS)}
<h2 id="effects">Paired effects ({html.escape(o.compare)} vs {html.escape(o.baseline)})</h2>{h(t["effects"], EFFECT_COLS)}
{h([r for r in t["effects"] if r.get("pairs")], EFFECT_MORE)}<p>{html.escape(METHOD_NOTE)}</p>
<h2 id="curves">Learning curves</h2>{"".join(_img(p) for p in t["plots"] if p.suffix == ".png")}
<h2 id="categories">Learning per preference category</h2>{h(t["category_summary"], CATEGORY_COLS)}
<h3>Preferences</h3>{h(t["preferences"][:PREF_ROWS_SHOWN], PREF_COLS)}<p>{html.escape(_more_preferences(t))}</p>
<h2 id="cost">Cost</h2>{h(t["costs"], COST_COLS)}{trials.sections(t)[1]}{simulator.sections(t)[1]}
<h2 id="settings">Settings</h2>{h(t["settings"], SETTING_COLS)}
<h2>Definitions</h2><ul>{defs}</ul>
{viewer}</body></html>"""
