"""Plain-text summary tables of a run: overall, per session (numbered from 1), and failures by stage;
each row with the completed sessions and the users its values rest on."""

from __future__ import annotations

from msc_graph.results.stats import (
    CI_METHOD,
    aggregate,
    aggregate_by_session_index,
    per_user_means,
)


def _row(label: str, agg: dict) -> list[str]:
    return [
        label,
        str(agg["completed"]),
        str(agg["task_success"].users),
        agg["task_success"].fmt(scale=100, digits=1),
        agg["user_effort"].fmt(),
        agg["length"].fmt(),
        str(sum(agg["failures"].values())),
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summary_text(records: list[dict], title: str = "", protocol: str = "ours") -> str:
    """TS (%), UE and Len with 95% CIs (a bootstrap over users), overall and per session; failures
    listed. For the published protocol, also the published aggregation (TS and Len averaged per user,
    then over users; UE pooled over sessions)."""
    header = ["", "completed", "users", "TS % [95% CI]", "UE [95% CI]", "Len [95% CI]", "failed"]
    overall = aggregate(records)
    parts = []
    if title:
        parts.append(title)
    parts.append(_table(header, [_row("all", overall)]))
    if protocol == "published":
        pu = per_user_means(records)
        if pu["task_success"] is not None:
            parts.append(
                f"Published aggregation (TS and Len: mean over {int(pu['users'] or 0)} users of each user's mean; "
                f"UE: over all sessions): TS {100 * pu['task_success']:.1f}%, UE {pu['user_effort']:.2f}, Len {pu['length']:.2f}"
            )
    by_index = aggregate_by_session_index(records)
    if len(by_index) > 1:
        rows = [_row(f"session {k + 1}", agg) for k, agg in by_index.items()]
        parts.append("Per session index:\n" + _table(header, rows))
    if overall["failures"]:
        stages = ", ".join(f"{stage}: {n}" for stage, n in sorted(overall["failures"].items()))
        failed = [r for r in records if r.get("failure")]
        listing = "\n".join(
            f"  user {r['user_id']} session {r['session_index'] + 1}: [{r['failure']['stage']}, "
            f"{r['failure'].get('kind', 'internal')}] {r['failure']['reason'][:160]}"
            for r in failed[:20]
        )
        more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
        parts.append(f"Failures by stage: {stages} (excluded from the averages)\n{listing}{more}")
    parts.append(f"Intervals: {CI_METHOD}.")
    reflect_errors = sum(1 for r in records if (r.get("reflection") or {}).get("error"))
    if reflect_errors:
        parts.append(f"Reflection failed in {reflect_errors} session(s); those users kept their earlier notes.")
    return "\n\n".join(parts)
