"""The report's parts on small files written here: which records count, how settings are labelled
and paired, the published columns, the transcript viewer's data, merge and the run summary."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from msc_graph.results.files import RecordWriter, manifest_path, write_json_atomic
from msc_graph.results.measures import session_table
from msc_graph.results.merge import merge_files
from msc_graph.results.provenance import code_version, provenance
from msc_graph.results.settings import load_results, pairing
from msc_graph.results.summary import summary_text
from msc_graph.results.tables import effect_rows, summary_rows
from msc_graph.results.viewer import script_json, session_detail, viewer_data

BASE = {"prompts": "p", "dataset_seed": 42, "max_turns": 10, "memory": "none", "agent": {"model": "a"}, "judge": {"model": "j"}}


def rec(user, session, h, ts=1, ue=1, dataset="d", memory="none", **extra):
    return {"dataset": dataset, "experiment_type": "agent_without_memory", "memory": memory, "settings_hash": h,
            "user_id": user, "session_index": session, "problem_id": session, "problem": "p", "solution": "s", "task_success": ts, "user_effort": ue, "length": 6, "failure": None,
            "turns": [], "ended_by": "terminate", **extra}  # fmt: skip


def write(path, records, settings=None, h=None):
    with RecordWriter(path) as w:
        for r in records:
            w.write(r)
    if settings is not None:
        users = sorted({r["user_id"] for r in records})
        sessions = max(r["session_index"] for r in records) + 1
        write_json_atomic(manifest_path(path), {"settings_hash": h, "result_settings": settings,
                                                "dataset": {"size": sessions}, "profiles": {"users": users}})  # fmt: skip
    return path


def test_last_attempt_counts_in_a_file_and_a_second_file_is_a_duplicate(tmp_path):
    settings = {**BASE, "dataset": "d"}
    failed = {**rec(0, 1, "h", ts=None), "failure": {"stage": "user", "reason": "x", "kind": "infrastructure"}}
    a = write(tmp_path / "a.jsonl", [rec(0, 0, "h"), failed, rec(0, 1, "h", ts=0)], settings, "h")
    b = write(tmp_path / "b.jsonl", [rec(0, 1, "h", ts=1), rec(1, 0, "h")], settings, "h")
    loaded = load_results([a, b, a])  # the same file twice is read once
    keys = sorted((r["user_id"], r["session_index"], r["task_success"]) for r in loaded.records)
    assert keys == [(0, 0, 1), (0, 1, 0), (1, 0, 1)]  # a's rerun counts; b's copy of (0, 1) is dropped
    assert loaded.superseded == 1
    assert loaded.duplicates == [{"file": str(b), "kept_from": str(a), "user_id": 0, "session_index": 1}]
    merged = merge_files([a, b])  # merge reads files the same way
    assert [(r.user_id, r.session_index, r.task_success) for r in merged.records] == keys
    assert merged.duplicates == [(0, 1, 0)] and merged.superseded == 1


def test_settings_labels_pool_datasets_and_pairing_needs_the_factor_alone(tmp_path):
    files = []
    for name, memory, turns, dataset in (("n10", "none", 10, "d1"), ("n10b", "none", 10, "d2"), ("r10", "retrieval", 10, "d1"),
                                         ("n2", "none", 2, "d1")):  # fmt: skip
        settings = {**BASE, "dataset": dataset, "memory": memory, "max_turns": turns}
        if memory == "retrieval":
            settings.update(retrieval_k=5, embedding="e")
        h = f"h-{name}"
        files.append(write(tmp_path / f"{name}.jsonl", [rec(u, k, h, dataset=dataset, memory=memory, ue=int(memory == "none"))
                                                       for u in range(3) for k in range(2)], settings, h))  # fmt: skip
    loaded = load_results(files)
    labels = sorted(s.label for s in loaded.settings.values())
    assert labels == ["memory=none, max_turns=10", "memory=none, max_turns=2", "memory=retrieval, max_turns=10"]
    by_label = {s.label: s for s in loaded.settings.values()}
    assert len(by_label["memory=none, max_turns=10"].files) == 2  # one setting, two datasets
    factor = ("memory", "retrieval_k", "retrieval_threshold", "embedding")
    assert pairing(by_label["memory=none, max_turns=10"], by_label["memory=retrieval, max_turns=10"], factor) == []
    assert pairing(by_label["memory=none, max_turns=2"], by_label["memory=retrieval, max_turns=10"], factor) == ["max_turns (2 vs 10)"]
    df = session_table(loaded.records)
    summary = summary_rows(df, loaded.settings)
    pooled = [r for r in summary if r["dataset"] == "all datasets"]
    assert [(r["setting"], r["sessions"]) for r in pooled] == [("memory=none, max_turns=10", 12)]
    (effect,) = effect_rows(df, loaded)
    assert effect["comparison"] == "memory=retrieval, max_turns=10 vs memory=none, max_turns=10"
    assert effect["pairs"] == 6 and effect["dUE"] == "-1.00 [-1.00, -1.00] (n = 6 pairs, 3 users)"
    # three users all -1: the exact two-sided p is 2/8, and the cell names the test and its users
    assert effect["p UE"] == "0.25 (exact Wilcoxon; 3 users)" and effect["p_user_effort_method"] == "exact Wilcoxon"
    assert effect["p TS %"] == "no test (0 of 3 users with a difference)"


def test_every_metric_cell_says_the_sessions_and_users_it_rests_on(tmp_path):
    records = [rec(u, k, "h", ts=int(k >= 6)) for u in range(5) for k in range(8)]  # the last quarter: sessions 7-8
    records += [rec(5, k, "h", ts=0) for k in range(6)]  # a sixth user who stopped after session 6: no late session
    loaded = load_results([write(tmp_path / "a.jsonl", records, {**BASE, "dataset": "d"}, "h")])
    (row,) = summary_rows(session_table(loaded.records), loaded.settings)
    assert row["TS %"].endswith("(n = 46 sessions, 6 users)")
    assert row["Late TS %"] == "100.0 [100.0, 100.0] (n = 10 sessions, 5 users)"  # not 46 sessions
    assert (row["late_success_n"], row["late_success_users"]) == (10, 5)
    assert row["TS % (per-user)"].endswith("(n = 46 sessions, 6 users)")


def test_without_a_manifest_settings_are_known_by_hash_and_never_paired(tmp_path):
    a = write(tmp_path / "a.jsonl", [rec(u, 0, "ha") for u in range(3)])
    b = write(tmp_path / "b.jsonl", [rec(u, 0, "hb", memory="retrieval", ue=0) for u in range(3)])
    loaded = load_results([a, b])
    assert loaded.no_manifest == [str(a), str(b)]
    (effect,) = effect_rows(session_table(loaded.records), loaded)
    assert effect["pairs"] == 0 and "no manifest" in effect["note"]


def test_published_columns_only_beside_published_protocol_rows(tmp_path):
    ours = write(tmp_path / "o.jsonl", [rec(u, k, "o") for u in range(2) for k in range(2)], {**BASE, "dataset": "d"}, "o")
    pub_settings = {**BASE, "dataset": "d", "protocol": "published", "agent": {"model": "meta-llama/Llama-3.3-70B-Instruct"}}
    pub_records = [rec(0, 0, "p", ts=1, ue=3), rec(0, 1, "p", ts=1, ue=1), rec(1, 0, "p", ts=0, ue=0)]
    pub = write(tmp_path / "p.jsonl", pub_records, pub_settings, "p")
    loaded = load_results([ours, pub])
    rows = {r["protocol"]: r for r in summary_rows(session_table(loaded.records), loaded.settings)}
    assert rows["ours"]["published headline"] == "" and rows["ours"]["published aggregation"] == ""
    assert rows["published"]["published headline"].startswith("TS 41.78%, UE 2.98, Len 15.96")
    # TS per user then over users: (1 + 0) / 2; UE pooled over sessions: 4 / 3
    assert rows["published"]["published aggregation"] == "TS 50.0%, UE 1.33, Len 6.00"


def test_viewer_data_is_compressed_escaped_and_marks_what_happened():
    turns = [{"role": "user", "enforce_preferences": False, "draft_answer": "I don't know", "preference_1_satisfied": "yes"},
             {"role": "agent", "response": "a"},
             {"role": "user", "enforce_preferences": "True", "draft_answer": 7, "preference_1_satisfied": "No: </script>"}]  # fmt: skip
    transcript = [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"},
                  {"role": "assistant", "content": "a"}, {"role": "user", "content": "<b>bold</b>"}]  # fmt: skip
    r = {**rec(0, 0, "h"), "_setting": "s", "turns": turns, "transcript": transcript, "retrieved": [{"user_turn": 1, "notes": ["n"]}],
         "notes_before": [], "notes_after": [{"preference": "p"}], "verdict": {"accuracy": 1, "reasoning": "ok", "raw": "x" * 99}}  # fmt: skip
    detail = session_detail(r)
    conv = detail["conversation"]
    assert [m["role"] for m in conv] == ["agent", "user", "agent", "user"]
    assert conv[3]["enforced"] is True and conv[3]["draft"] == "7" and conv[1]["enforced"] is False
    assert conv[2]["recalled"] == ["n"] and "raw" not in detail["verdict"]
    from msc_graph.results.settings import Setting

    index, chunks = viewer_data([r], {"s": Setting("s", {}, True, label="memory=none")})
    assert index["sessions"][0][:7] == [0, "d", 0, 0, 1, 0, "solved"]
    unpacked = json.loads(gzip.decompress(base64.b64decode(chunks[0])))
    assert unpacked[0]["conversation"][3]["text"] == "<b>bold</b>"
    assert "</script>" not in script_json(unpacked) and json.loads(script_json(unpacked)) == unpacked


def test_run_summary_numbers_sessions_from_one_and_names_the_interval():
    text = summary_text([rec(u, k, "h") for u in range(3) for k in range(2)], "t")
    assert "session 1 " in text and "session 2 " in text and "session 0" not in text
    assert "percentile bootstrap over users" in text
    header, _, overall = text.splitlines()[2:5]  # after the title and a blank line
    assert header.split()[:3] == ["completed", "users", "TS"] and overall.split()[:3] == ["all", "6", "3"]  # 6 sessions, 3 users


@pytest.mark.parametrize("bad", ["{not json", '{"settings_hash": 1}'])
def test_an_unreadable_manifest_is_an_error_with_the_file_named(tmp_path, bad):
    from msc_graph.results.files import ResultsError

    path = write(tmp_path / "a.jsonl", [rec(0, 0, "h")])
    manifest_path(path).write_text(bad)
    if bad.startswith("{not"):
        with pytest.raises(ResultsError, match="manifest"):
            load_results([path])
    else:  # a manifest without result_settings: the records' own settings, said so
        assert load_results([path]).no_manifest == [str(path)]


def test_provenance_names_models_dates_and_code(tmp_path):
    import subprocess

    from tests.helpers import REPO

    code = code_version()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if (REPO / ".git").exists():  # a checkout: the commit, and whether tracked files differ from it
        assert code["commit"] == head.stdout.strip() and isinstance(code["dirty"], bool)
    else:
        assert code["version"]
    files = []
    for name, agent, started, commit in (("a", "agent-1", "2026-01-02T10:00:00+00:00", "c" * 40),
                                         ("b", "agent-2", "2026-01-05T10:00:00+00:00", "d" * 40)):  # fmt: skip
        settings = {**BASE, "dataset": "d", "agent": {"model": agent}, "user": {"model": "sim"}}
        path = write(tmp_path / f"{name}.jsonl", [rec(0, 0, name)], settings, name)
        man = json.loads(manifest_path(path).read_text())
        write_json_atomic(manifest_path(path), {**man, "started": started, "code": {"commit": commit, "dirty": name == "b"}})
        files.append(path)
    files.append(write(tmp_path / "c.jsonl", [rec(0, 0, "c", timing={"start": "2026-01-03T00:00:00+00:00", "wall_s": 1.0})]))
    text = provenance(load_results(files)).text()
    assert text.startswith("Models: user simulator sim; agent agent-1, agent-2; judge j. Runs: 2026-01-02 to 2026-01-05, "
                           f"code {'c' * 12}, {'d' * 12} + uncommitted changes, not recorded. Report: 20"), text  # fmt: skip
    assert text.endswith(f"code {code.get('commit', '')[:12] or 'version ' + code.get('version', '')}"
                         + (" + uncommitted changes." if code.get("dirty") else "."))


def test_two_runs_that_differ_only_in_profile_set_are_two_rows_never_duplicates(tmp_path):
    """The issue's report paired runs over two profile sets as one setting and dropped one run's
    sessions as duplicates: each run's key now holds its profile set, so they are two rows that
    do not pair (the effect of a factor is never computed across them)."""
    from msc_graph.config import RunSettings
    from msc_graph.data import LoadedDataset
    from msc_graph.run.plan import key_of

    data = LoadedDataset("d", [{"problem": "p", "solution": "s"}], "task", "builtin")
    files = []
    for name in ("nurses", "pilots"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps([{"i": i, "persona": f"{name} {i}", "preferences": ["brief"]} for i in range(2)]))
        payload, h = key_of(RunSettings(profiles=str(path)), data)
        records = [rec(u, s, h, profile_hash=f"{name}-{u}") for u in range(2) for s in range(3)]
        files.append(write(tmp_path / f"{name}.jsonl", records, payload, h))
    loaded = load_results(files)
    assert len(loaded.records) == 12 and loaded.duplicates == []
    a, b = loaded.settings.values()
    assert a.id != b.id and "profile_set=" in a.label and a.label != b.label
    assert any(d.startswith("profile_set") for d in pairing(a, b, ("memory",)))  # never paired as one setting


def test_one_hash_over_two_profile_sets_from_older_versions_is_refused_not_deduplicated(tmp_path):
    """Files made before the profile set keyed results share a hash across profile sets: the same
    key with other profiles is refused, never counted as a duplicate of the other run."""
    from msc_graph.results.files import ResultsError

    settings = {**BASE, "dataset": "d"}
    a = write(tmp_path / "a.jsonl", [rec(0, 0, "h", profile_hash="p1")], settings, "h")
    b = write(tmp_path / "b.jsonl", [rec(0, 0, "h", profile_hash="p2")], settings, "h")
    with pytest.raises(ResultsError, match="different profiles"):
        load_results([a, b])


def test_each_point_of_a_figure_is_mapped_where_it_is_drawn(tmp_path):
    """The report makes every plotted point a link to its sessions from the figure's point map: each
    mapped spot must lie on a marker of its series' colour in the PNG (and name its setting and session)."""
    import matplotlib.image as mpimg

    from msc_graph.results.figures import PALETTE, plot_series, points_path

    rows = [{"dataset": d, "setting_id": sid, "session": k, "v": v, "lo": v - 5, "hi": v + 5}
            for d in ("a", "b") for sid, base in (("s1", 20), ("s2", 70)) for k, v in ((1, base), (2, base + 10), (3, base + 5))]  # fmt: skip
    paths = plot_series(rows, panel_key="dataset", value="v", low="lo", high="hi", percent=True, ylabel="v", title="t",
                        caption="c", labels={"s1": "one", "s2": "two"}, n_of=lambda s: "n", path_stem=tmp_path / "fig")  # fmt: skip
    points = json.loads(points_path(paths[0]).read_text())
    assert len(points) == 12 and {(p["setting"], p["dataset"], p["session"]) for p in points} == {
        (s, d, k) for s in ("one", "two") for d in ("a", "b") for k in (1, 2, 3)}
    image = mpimg.imread(paths[0])[:, :, :3]
    height, width = image.shape[:2]
    for p in points:
        colour = PALETTE[0 if p["setting"] == "one" else 1]
        want = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        x, y = round(p["left"] / 100 * width), round(p["top"] / 100 * height)
        near = image[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3)
        assert min(sum(abs(c - w) for c, w in zip(px, want, strict=True)) for px in near) < 0.05, p
