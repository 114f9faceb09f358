"""Figures a paper or a slide can take as they are: one figure per metric, a panel per dataset plus
the pooled panel, sessions numbered from 1, 95% CI bands in the line's colour with a caption that
states the method, the models, the dates and the code, the legend (with the users and sessions each
point rests on) below the panels (never over the data), rates on 0-100, the Okabe-Ito
colour-blind-safe palette with a marker and dash per setting, and each series nudged sideways a
little so identical series stay visible. Written as PNG, SVG and PDF, with a point map
(``fig_<name>.points.json``: where each point is and which sessions it stands for) that makes the
report page's points links to their sessions."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

from msc_graph.results.measures import METRICS, Metric
from msc_graph.results.stats import CI_METHOD, plural
from msc_graph.results.tables import ALL

#: Okabe & Ito (2008), ordered so the first colours are the most distinct on white.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]
FORMATS = ("png", "svg", "pdf")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style(i: int) -> dict:
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)], "linestyle": DASHES[i % len(DASHES)]}


def _panels(rows: list[dict], key: str) -> list[str]:
    names = sorted({r[key] for r in rows} - {ALL})
    return [*names, ALL] if any(r[key] == ALL for r in rows) else names


def _layout(plt, n: int, legend_lines: int, caption_lines: int):
    """Panels on top; below them, in inches set aside, the legend and then the caption."""
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    width = max(7.5, 4.3 * ncols)
    legend_h, caption_h = 0.2 * legend_lines + 0.15, 0.15 * caption_lines + 0.1
    height = 0.55 + 3.0 * nrows + 0.6 + legend_h + caption_h
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.55 / height, bottom=(0.6 + legend_h + caption_h) / height, left=0.7 / width,
                        right=1 - 0.2 / width, hspace=0.5, wspace=0.3)  # fmt: skip
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n]), (legend_h + caption_h + 0.1) / height, 0.05 / height


def _limits(ax, metric_percent: bool, highs: list[float], sessions: list[int]) -> None:
    if metric_percent:
        ax.set_ylim(-3, 103)
    else:
        top = max([h for h in highs if h is not None and not math.isnan(h)] or [1.0])
        top = top * 1.12 if top > 0 else 1.0
        ax.set_ylim(-0.03 * top, top)
    last = max(sessions or [1])
    ax.set_xlim(0.5, last + 0.5)
    step = 1 if last <= 12 else 5 if last <= 40 else 10
    ax.set_xticks(range(1, last + 1) if step == 1 else [1, *range(step, last + 1, step)])
    ax.grid(alpha=0.3)


def plot_series(
    rows: list[dict], *, panel_key: str, value: str, low: str, high: str, percent: bool, ylabel: str,
    title: str, caption: str, labels: dict[str, str], n_of: Callable[[str], str], path_stem: Path,
) -> list[Path]:  # fmt: skip
    """One figure: a panel per ``panel_key`` value, a line (with its band) per setting."""
    plt = _pyplot()
    panels = _panels(rows, panel_key)
    order = sorted({r["setting_id"] for r in rows}, key=lambda s: labels[s])
    names = {s: "\n".join(textwrap.wrap(f"{labels[s]} ({n_of(s)})", 110)) for s in order}
    width_chars = int(max(7.5, 4.3 * min(len(panels), 3)) * 17)
    caption_text = "\n".join(textwrap.wrap(caption, width_chars))
    fig, axes, legend_top, caption_y = _layout(
        plt, len(panels), sum(n.count("\n") + 1 for n in names.values()), caption_text.count("\n") + 1
    )
    handles = {}
    drawn: list[tuple] = []  # (axes, setting, panel, the points' rows, their x)
    for ax, panel in zip(axes, panels, strict=True):
        prow = [r for r in rows if r[panel_key] == panel]
        for i, sid in enumerate(order):
            srows = sorted((r for r in prow if r["setting_id"] == sid and r[value] is not None), key=lambda r: r["session"])
            if srows:
                handles[sid], xs = _series(ax, srows, i, len(order), value, low, high)
                drawn.append((ax, sid, panel, srows, xs))
        _limits(ax, percent, [r[high] for r in rows], [r["session"] for r in rows])  # one scale for every panel
        ax.set_title("all datasets (pooled)" if panel == ALL else str(panel), fontsize=10)
        ax.set_xlabel("session")
        ax.set_ylabel(ylabel)
    fig.suptitle(title, fontsize=12)
    shown = [s for s in order if s in handles]
    fig.legend([handles[s] for s in shown], [names[s] for s in shown], loc="upper center", ncol=1, fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, legend_top))  # fmt: skip
    fig.text(0.5, caption_y, caption_text, ha="center", va="bottom", fontsize=7.5, color="#333333")
    fig.canvas.draw()
    points = point_map(fig, drawn, value, labels, panel_key)
    paths = []
    with plt.rc_context({"pdf.fonttype": 42}):  # TrueType in the PDF: publishers refuse Type 3 fonts
        for ext in FORMATS:
            path = path_stem.with_suffix(f".{ext}")
            fig.savefig(path, dpi=150 if ext == "png" else None)
            paths.append(path)
    points_path(path_stem).write_text(json.dumps(points), encoding="utf-8")
    plt.close(fig)
    return paths


def points_path(figure: Path) -> Path:
    """Where a figure's point map lies: ``fig_x.points.json`` beside ``fig_x.png``."""
    return figure.with_suffix(".points.json")


def point_map(fig, drawn: list[tuple], value: str, labels: dict[str, str], panel_key: str) -> list[dict]:
    """Where each plotted point is on the figure (left and top in % of its width and height) and which
    sessions it stands for (setting label, dataset when panels are datasets, session number), so the
    report page can make every point a link to its sessions."""
    width, height = fig.bbox.width, fig.bbox.height
    out = []
    for ax, sid, panel, srows, xs in drawn:
        for r, x in zip(srows, xs, strict=True):
            px, py = ax.transData.transform((x, r[value]))
            out.append({"left": round(100 * px / width, 3), "top": round(100 * (1 - py / height), 3), "setting": labels[sid],
                        "dataset": panel if panel_key == "dataset" and panel != ALL else "", "session": r["session"],
                        "value": r[value]})  # fmt: skip
    return out


def _series(ax, srows: list[dict], i: int, count: int, value: str, low: str, high: str):
    """One setting's line and band, nudged sideways by its position among ``count`` settings."""
    dodge = (i - (count - 1) / 2) * min(0.08, 0.3 / max(1, count))
    xs = [r["session"] + dodge for r in srows]
    ys = [r[value] for r in srows]
    lo = [r[low] if r[low] is not None else r[value] for r in srows]
    hi = [r[high] if r[high] is not None else r[value] for r in srows]
    st = style(i)
    (line,) = ax.plot(xs, ys, markersize=4, linewidth=1.6, **st)
    ax.fill_between(xs, lo, hi, color=st["color"], alpha=0.15, linewidth=0)
    return line, xs


def _span(values: list[int], unit: str) -> str:
    low, high = min(values), max(values)
    return plural(low, unit) if low == high else f"{low}-{high} {unit}"


def _n_text(rows: list[dict], value: str, users_key: str, sessions_key: str) -> Callable[[str], str]:
    """The n each plotted point of a setting rests on: its users and sessions (their range over the points)."""

    def n_of(sid: str) -> str:
        points = [r for r in rows if r["setting_id"] == sid and r[value] is not None]
        if not points:
            return "no data"
        return f"n per point: {_span([r[users_key] for r in points], 'users')}, {_span([r[sessions_key] for r in points], 'sessions')}"

    return n_of


def metric_figures(curves: list[dict], labels: dict[str, str], out_dir: Path, provenance: str = "") -> list[Path]:
    """One figure per metric that has a learning curve (``fig_<metric>.png/.svg/.pdf``); ``provenance``
    (models, dates, code) ends every caption."""
    paths: list[Path] = []
    if not curves:
        return paths
    for m in METRICS:
        if not m.curve:
            continue
        paths += plot_series(
            curves, panel_key="dataset", value=m.key, low=f"{m.key}_low", high=f"{m.key}_high", percent=m.percent,
            ylabel=m.label, title=_title(m), labels=labels, n_of=_n_text(curves, m.key, f"{m.key}_users", f"{m.key}_n"),
            path_stem=out_dir / f"fig_{m.key}", caption=f"{_caption(m)} {provenance}".strip(),
        )  # fmt: skip
    return paths


def _title(m: Metric) -> str:
    return m.definition.split(":")[0] + f" ({m.label}) by session"


def _caption(m: Metric) -> str:
    return (f"{m.definition} Line: per-session mean over completed sessions at each session (numbered from 1); "
            f"shaded band: {CI_METHOD}. The legend gives the users and sessions each point rests on. Series are "
            "nudged sideways slightly so equal series stay visible.")  # fmt: skip


def category_figure(rows: list[dict], labels: dict[str, str], out_dir: Path, provenance: str = "") -> list[Path]:
    """Enforcement rate per preference category by session, one panel per category."""
    if not rows:
        return []
    data = [{**r, "dataset": "", "value": r["rate %"]} for r in rows]
    caption = (f"Share of sessions in which the user enforced a preference of the category (read from the simulator's "
               f"per-preference checks), pooled over datasets; shaded band: {CI_METHOD}. The legend gives the users and "
               f"sessions each point rests on. {provenance}").strip()  # fmt: skip
    return plot_series(
        data, panel_key="category", value="value", low="low", high="high", percent=True, ylabel="enforced %",
        title="Enforcement by preference category and session", caption=caption, labels=labels,
        n_of=_n_text(data, "value", "users", "sessions"), path_stem=out_dir / "fig_preference_categories",
    )  # fmt: skip
