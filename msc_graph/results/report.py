"""Turn result files into the answer: does memory help, how fast, and at what cost.

``build_report(records, out_dir)`` writes ``report.md``, ``summary.csv``, ``effects.csv``,
``curves.csv``, ``preferences.csv``, learning-curve plots (PNG and SVG) and one self-contained
``report.html`` (plots inlined), and returns the tables.
"""

from __future__ import annotations

import base64
import csv
import html
from collections import defaultdict
from pathlib import Path

from msc_graph.metrics import enforced_preferences
from msc_graph.results.stats import aggregate, aggregate_by_session_index, paired_bootstrap_diff

#: The study's headline (Llama-3.3-70B-Instruct agent, all five datasets), as summarised from it;
#: "notes" is its memory agent (notes plus LLM selection), shown beside every learning memory mode.
PUBLISHED_HEADLINE = {
    "none": {"task_success": 41.78, "user_effort": 2.98, "length": 15.96},
    "notes": {"task_success": 46.38, "user_effort": 1.96, "length": 14.53},
}
METRICS = (("task_success", "TS %", 100.0), ("user_effort", "UE", 1.0), ("length", "Len", 1.0))


def setting_of(r: dict) -> str:
    return f"{r.get('agent_model', '?')} / memory={r.get('memory', 'none')}"


def _group(records: list[dict], key) -> dict:
    out: dict = defaultdict(list)
    for r in records:
        out[key(r)].append(r)
    return dict(sorted(out.items()))


def summary_rows(records: list[dict]) -> list[dict]:
    rows = []
    for (dataset, setting), recs in _group(records, lambda r: (r["dataset"], setting_of(r))).items():
        agg = aggregate(recs)
        row = {"dataset": dataset, "setting": setting, "sessions": agg["sessions"], "completed": agg["completed"]}
        for key, label, scale in METRICS:
            est = agg[key]
            row[label] = est.fmt(scale=scale, digits=1 if key == "task_success" else 2)
            row[f"{key}_mean"] = None if est.mean is None else est.mean * scale
        row["failures"] = ", ".join(f"{k}: {v}" for k, v in sorted(agg["failures"].items())) or "0"
        memory = recs[0].get("memory", "none")
        pub_key = "none" if memory == "none" else "notes" if memory in ("notes", "select", "retrieval") else None
        pub = PUBLISHED_HEADLINE.get(pub_key) if "Llama-3.3-70B" in setting and pub_key else None
        row["published (all datasets)"] = (
            f"TS {pub['task_success']}%, UE {pub['user_effort']}, Len {pub['length']}" if pub else ""
        )
        rows.append(row)
    return rows


def effect_rows(records: list[dict]) -> list[dict]:
    """Memory settings minus the no-memory run of the same agent, users and problems (paired)."""
    rows = []
    by_ds_model = _group(records, lambda r: (r["dataset"], r.get("agent_model", "?")))
    for (dataset, model), recs in by_ds_model.items():
        by_mem = _group([r for r in recs if not r.get("failure")], lambda r: r.get("memory", "none"))
        base = by_mem.get("none")
        if not base:
            continue
        for mem, other in by_mem.items():
            if mem == "none":
                continue
            row = {"dataset": dataset, "agent": model, "setting": f"memory={mem} vs none"}
            for key, label, scale in METRICS:
                a = {(r["user_id"], r["problem_id"]): float(r[key]) * scale for r in base if r.get(key) is not None}
                b = {(r["user_id"], r["problem_id"]): float(r[key]) * scale for r in other if r.get(key) is not None}
                diff = paired_bootstrap_diff(a, b)
                row[f"d{label}"] = diff.fmt(digits=2)
                row["pairs"] = diff.n
            rows.append(row)
    return rows


def curve_rows(records: list[dict]) -> list[dict]:
    rows = []
    for (dataset, setting), recs in _group(records, lambda r: (r["dataset"], setting_of(r))).items():
        for idx, agg in aggregate_by_session_index(recs).items():
            row = {"dataset": dataset, "setting": setting, "session_index": idx, "n": agg["completed"]}
            for key, label, scale in METRICS:
                est = agg[key]
                row[label] = None if est.mean is None else round(est.mean * scale, 3)
                row[f"{label} low"] = None if est.low is None else round(est.low * scale, 3)
                row[f"{label} high"] = None if est.high is None else round(est.high * scale, 3)
            rows.append(row)
    return rows


def preference_rows(records: list[dict]) -> list[dict]:
    """How often each preference is enforced, per setting and session index."""
    counts: dict = defaultdict(lambda: [0, 0])
    for r in records:
        if r.get("failure"):
            continue
        enforced = set(enforced_preferences(r))
        for i, category in enumerate(r.get("categories") or ["?"] * len(r.get("preferences") or [])):
            text = r["preferences"][i]
            key = (setting_of(r), f"{category}: {text[:70]}", r["session_index"])
            counts[key][0] += i in enforced
            counts[key][1] += 1
    return [
        {"setting": s, "preference": p, "session_index": k, "enforced": e, "sessions": n, "rate": round(e / n, 3)}
        for (s, p, k), (e, n) in sorted(counts.items())
    ]


def cost_rows(records: list[dict]) -> list[dict]:
    rows = []
    for setting, recs in _group(records, setting_of).items():
        roles: dict = defaultdict(lambda: defaultdict(float))
        for r in recs:
            for role, u in (r.get("usage") or {}).items():
                for k, v in u.items():
                    roles[role][k] += v
        n = len(recs)
        for role, u in sorted(roles.items()):
            prompt = u["prompt_tokens"]
            rows.append({
                "setting": setting, "role": role, "calls/session": round(u["calls"] / n, 2),
                "prompt tok/session": round(prompt / n), "completion tok/session": round(u["completion_tokens"] / n),
                "cache hit": f"{100 * u['cached_prompt_tokens'] / prompt:.1f}%" if prompt else "n/a",
            })  # fmt: skip
        wall = sum((r.get("timing") or {}).get("wall_s", 0) for r in recs) / n
        rows.append({"setting": setting, "role": "(session wall time)", "calls/session": f"{wall:.1f}s"})
    return rows


def plot_curves(curves: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    paths = []
    for dataset, rows in _group(curves, lambda r: r["dataset"]).items():
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for ax, (_, label, _) in zip(axes, METRICS, strict=True):
            for setting, srows in _group(rows, lambda r: r["setting"]).items():
                xs = [r["session_index"] for r in srows if r[label] is not None]
                ys = [r[label] for r in srows if r[label] is not None]
                lo = [r[f"{label} low"] if r[f"{label} low"] is not None else r[label] for r in srows if r[label] is not None]
                hi = [r[f"{label} high"] if r[f"{label} high"] is not None else r[label] for r in srows if r[label] is not None]
                (line,) = ax.plot(xs, ys, marker="o", label=setting)
                ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
            ax.set_title(label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("session index")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Learning curves: {dataset}")
        fig.tight_layout()
        for ext in ("png", "svg"):
            path = out_dir / f"curves_{dataset}.{ext}"
            fig.savefig(path, dpi=110)
            paths.append(path)
        plt.close(fig)
    return paths


def _md_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_(none)_\n"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)


def _html_table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


SUMMARY_COLS = ["dataset", "setting", "sessions", "completed", "TS %", "UE", "Len", "failures", "published (all datasets)"]
EFFECT_COLS = ["dataset", "agent", "setting", "pairs", "dTS %", "dUE", "dLen"]
COST_COLS = ["setting", "role", "calls/session", "prompt tok/session", "completion tok/session", "cache hit"]
NOTE = (
    "TS, UE and Len are means over completed sessions with 95% bootstrap confidence intervals; failed "
    "sessions are excluded and counted under failures. Effects are paired by user and problem. In the "
    "published design every user meets the same problems in the same order, so session index and problem "
    "difficulty are confounded; runs made with --shuffle-problems-per-user separate learning from difficulty."
)


def build_report(records: list[dict], out_dir: str | Path) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary, effects, curves = summary_rows(records), effect_rows(records), curve_rows(records)
    prefs, costs = preference_rows(records), cost_rows(records)
    for name, rows in (("summary", summary), ("effects", effects), ("curves", curves), ("preferences", prefs), ("costs", costs)):
        _write_csv(out / f"{name}.csv", rows)
    plots = plot_curves(curves, out)
    shuffled = any(r.get("problem_id") != r.get("session_index") for r in records)
    order_note = "Problem order: shuffled per user." if shuffled else "Problem order: the same for every user (confounded)."
    top_prefs = _preference_overview(prefs)
    md = [
        "# MultiSessionCollab report\n", NOTE + "\n", order_note + "\n",
        "## Results\n", _md_table(summary, SUMMARY_COLS),
        "\n## Effect of memory (paired)\n", _md_table(effects, EFFECT_COLS),
        "\n## Learning curves\n", *(f"![{p.stem}]({p.name})\n" for p in plots if p.suffix == ".png"),
        "\n## Preferences: enforcement rate in the first and last session\n",
        _md_table(top_prefs, ["setting", "preference", "first", "last"]),
        "\n## Cost\n", _md_table(costs, COST_COLS),
    ]  # fmt: skip
    (out / "report.md").write_text("".join(md), encoding="utf-8")
    images = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"></figure>'
        for p in plots
        if p.suffix == ".png"
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>MultiSessionCollab report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #bbb;padding:4px 8px;font-size:13px}}th{{background:#eee}}img{{max-width:100%}}</style></head>
<body><h1>MultiSessionCollab report</h1><p>{html.escape(NOTE)}</p><p>{html.escape(order_note)}</p>
<h2>Results</h2>{_html_table(summary, SUMMARY_COLS)}
<h2>Effect of memory (paired)</h2>{_html_table(effects, EFFECT_COLS)}
<h2>Learning curves</h2>{images}
<h2>Preferences: enforcement rate in the first and last session</h2>{_html_table(top_prefs, ["setting", "preference", "first", "last"])}
<h2>Cost</h2>{_html_table(costs, COST_COLS)}</body></html>"""
    (out / "report.html").write_text(page, encoding="utf-8")
    return {"summary": summary, "effects": effects, "curves": curves, "preferences": prefs, "costs": costs, "plots": plots}


def _preference_overview(prefs: list[dict]) -> list[dict]:
    rows = []
    for (setting, pref), group in _group(prefs, lambda r: (r["setting"], r["preference"])).items():
        first = min(group, key=lambda r: r["session_index"])
        last = max(group, key=lambda r: r["session_index"])
        rows.append({"setting": setting, "preference": pref, "first": f"{first['rate']:.2f} (n={first['sessions']})",
                     "last": f"{last['rate']:.2f} (n={last['sessions']})"})  # fmt: skip
    return rows
