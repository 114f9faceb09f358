"""runners/report.py on result files made by real runs against the scripted server: rows are
settings, duplicates count once, effects pair only runs that differ in the compared factor, the
figures, and the HTML page with its transcript viewer in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from msc_graph.results.provenance import code_text, code_version
from tests.helpers import REPO, cli_args, run_cli

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "runners" / "report.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two datasets (demo and a problems file) x (no memory, retrieval memory) at max_turns 10, and a
    no-memory demo run at max_turns 2 (an ablation that must never be pooled with the others)."""
    from tests.helpers import start_scripted_server

    folder = tmp_path_factory.mktemp("results")
    sums = folder / "sums.json"
    sums.write_text(json.dumps([{"problem": f"Add {i} and {i + 2}.", "solution": f"{2 * i + 2}"} for i in range(4)]))
    server = start_scripted_server()
    out = {}
    try:
        for name, dataset, exp, extra in (
            ("demo_none", "demo", "agent_without_memory", []), ("demo_memory", "demo", "agent_with_memory", []),
            ("sums_none", str(sums), "agent_without_memory", []), ("sums_memory", str(sums), "agent_with_memory", []),
            ("demo_none_t2", "demo", "agent_without_memory", ["--max_turns", "2"]),
        ):  # fmt: skip
            path = folder / f"{name}.jsonl"
            res = run_cli("--experiment_type", exp, "--dataset", dataset, "--eval_size", "4", "--users", "4",
                          *cli_args(server.url), "--output_file", str(path), "--no-progress", *extra)  # fmt: skip
            assert res.returncode == 0, res.stderr
            out[name] = path
    finally:
        server.stop()
    # a merge of overlapping shards: the same setting's sessions in a second file
    copy = folder / "demo_none_copy.jsonl"
    shutil.copy(out["demo_none"], copy)
    shutil.copy(str(out["demo_none"]) + ".manifest.json", str(copy) + ".manifest.json")
    out["demo_none_copy"] = copy
    return out


def test_rows_are_settings_pooled_over_datasets_and_duplicates_count_once(runs, tmp_path):
    res = report(*runs.values(), "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    summary = rows(tmp_path / "summary.csv")
    by = {(r["dataset"], r["setting"]): r for r in summary}
    # labels name what differs (memory, max_turns); the ablation is its own row
    assert set(by) == {
        ("demo", "memory=none, max_turns=10"), ("demo", "memory=retrieval, max_turns=10"),
        ("demo", "memory=none, max_turns=2"), ("sums", "memory=none, max_turns=10"),
        ("sums", "memory=retrieval, max_turns=10"), ("all datasets", "memory=none, max_turns=10"),
        ("all datasets", "memory=retrieval, max_turns=10"),
    }  # fmt: skip
    for r in summary:  # each (setting, user, session) once: the duplicated file adds nothing
        assert (int(r["sessions"]), int(r["users"])) == ((32, 4) if r["dataset"] == "all datasets" else (16, 4)), r
    assert by[("demo", "memory=none, max_turns=2")]["TS %"].startswith("0.0")
    assert by[("demo", "memory=none, max_turns=10")]["TS %"] == "100.0 [100.0, 100.0] (n = 16 sessions, 4 users)"
    assert float(by[("all datasets", "memory=retrieval, max_turns=10")]["user_effort_mean"]) == 0.25
    dropped = rows(tmp_path / "dropped.csv")
    assert len(dropped) == 16 and {d["reason"] for d in dropped} == {"duplicate"}
    md = (tmp_path / "report.md").read_text()
    assert "16 duplicate record(s)" in md and "Timeout %" in md and "Succ/1k user tok" in md
    assert "published headline" not in md  # no published-protocol row here
    assert "sessions 4-4 of 4" not in md and "session 4 of 4" in md  # the late window, in words
    # late-session success rests on the last session of each user alone, and says so
    assert by[("demo", "memory=none, max_turns=10")]["Late TS %"] == "100.0 [100.0, 100.0] (n = 4 sessions, 4 users)"
    # the header names the models, the runs' date and code, and the report's
    header = md.split("\n")[1]
    assert header.startswith("Models: user simulator scripted; agent scripted; judge scripted. Runs: 20"), header
    assert header.count(f"code {code_text(code_version())}") == 2 and "Report: 20" in header, header  # the runs' and the report's
    # the ablation is a row of its own, and pairing refuses it (it differs in more than memory)
    effects = rows(tmp_path / "effects.csv")
    paired = [e for e in effects if e["pairs"] not in ("", "0")]
    assert {e["dataset"] for e in paired} == {"demo", "sums", "all datasets"}
    for e in paired:
        assert e["comparison"] == "memory=retrieval, max_turns=10 vs memory=none, max_turns=10"
        # the scripted user enforces once a session until the agent knows: memory saves 3 of 4
        assert e["dUE"] == f"-0.75 [-0.75, -0.75] (n = {e['pairs']} pairs, 4 users)"
        assert e["dTS %"] == f"0.0 [0.0, 0.0] (n = {e['pairs']} pairs, 4 users)"
        # the case: 4 users with tied differences; the exact two-sided p is 2/16, never a normal 0.046
        assert e["p UE"] == "0.125 (exact Wilcoxon; 4 users)" and e["p_user_effort_method"] == "exact Wilcoxon"
    assert "exact null distribution" in md
    assert {(e["dataset"], e["pairs"], e["users"]) for e in paired} == {("demo", "16", "4"), ("sums", "16", "4"), ("all datasets", "32", "4")}


def test_runs_that_differ_in_more_than_the_compared_factor_are_not_paired(runs, tmp_path):
    # the case: no memory at max_turns 2 beside memory at max_turns 10
    res = report(runs["demo_none_t2"], runs["demo_memory"], "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    (effect,) = rows(tmp_path / "effects.csv")
    assert effect["pairs"] == "0" and "not paired" in effect["note"] and "max_turns (2 vs 10)" in effect["note"]
    assert "dUE" not in effect or not effect.get("dUE")
    # any setting can be the compared factor: max_turns 2 against 10, both without memory, pair
    res = report(runs["demo_none_t2"], runs["demo_none"], "--out", tmp_path / "t", "--compare", "max_turns", "--baseline", "10")
    assert res.returncode == 0, res.stderr
    (effect,) = rows(tmp_path / "t" / "effects.csv")
    assert effect["comparison"] == "memory=none, max_turns=2 vs memory=none, max_turns=10" and effect["pairs"] == "16"
    assert effect["dTS %"] == "-100.0 [-100.0, -100.0] (n = 16 pairs, 4 users)"
    assert effect["p TS %"] == "0.125 (exact Wilcoxon; 4 users)"


def test_figures_per_metric_in_three_formats(runs, tmp_path):
    import matplotlib.image as mpimg

    assert report(runs["demo_none"], runs["demo_memory"], runs["sums_none"], runs["sums_memory"], "--out", tmp_path).returncode == 0
    for metric in ("task_success", "user_effort", "length", "timeout", "user_tokens", "success_per_1k",
                   "quick_resolution", "zero_enforcement", "first_turn_enforcement", "preference_categories"):  # fmt: skip
        for ext in ("png", "svg", "pdf"):
            assert (tmp_path / f"fig_{metric}.{ext}").is_file(), (metric, ext)
    assert (tmp_path / "fig_task_success.pdf").read_bytes()[:4] == b"%PDF"
    svg = (tmp_path / "fig_user_effort.svg").read_text()
    code = code_text(code_version()).split(" + ")[0]  # the commit (a caption may wrap before "+ uncommitted changes")
    for text in ("demo", "sums", "all datasets (pooled)", "percentile bootstrap over users", "n per point: 4 users, 4-8 sessions",
                 "Models:", code):  # fmt: skip
        assert text in svg, text
    first_enf = (tmp_path / "fig_first_turn_enforcement.svg").read_text()  # a subset metric: its own n per point
    assert "n per point: 4 users, 4-8 sessions" in first_enf and code in first_enf
    img = mpimg.imread(tmp_path / "fig_user_effort.png")
    assert img.shape[0] > 500 and img.shape[1] > 1200 and img[..., :3].std() > 0.05
    curves = rows(tmp_path / "curves.csv")
    assert sorted({int(r["session"]) for r in curves}) == [1, 2, 3, 4]  # sessions from 1


def test_bad_input_is_one_line_and_writes_nothing(runs, tmp_path):
    out = tmp_path / "never"
    for args in ([tmp_path / "missing.jsonl"], [runs["demo_none"], "--compare", "nonsense", "--baseline", "1"],
                 [runs["demo_none"], "--compare", "max_turns"], [runs["demo_none"], "--late-fraction", "0"],
                 [runs["demo_none"], "--bogus"]):  # fmt: skip
        res = report(*args, "--out", out)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
        assert not out.exists()
    help_text = report("--help").stdout
    for flag in ("--out", "--compare", "--baseline", "--transcripts", "--quick-turns", "--late-fraction", "--seed"):
        assert flag in help_text, flag


def test_transcript_viewer_in_headless_chromium(runs, tmp_path):
    from tests.integration.chromium import Chromium, chromium_path

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    res = report(runs["demo_none"], runs["demo_memory"], runs["sums_memory"], runs["demo_none_t2"], "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    with Chromium(tmp_path / "profile") as page:
        page.open((tmp_path / "report.html").as_uri())
        page.wait_for("document.body.dataset.viewer === 'ready'")
        count = lambda: page.eval("document.querySelectorAll('#session-rows tr').length")  # noqa: E731
        assert count() == 64 and "64 of 64 sessions" in page.eval("document.getElementById('f-count').textContent")
        page.select("#f-dataset", "demo")
        page.select("#f-setting", str(page.eval("[...document.querySelectorAll('#f-setting option')].findIndex(o => o.textContent === 'memory=retrieval, max_turns=10') - 1")))
        assert count() == 16
        page.select("#f-user", "2")
        page.select("#f-outcome", "enforced")
        assert count() == 1  # with memory, user 2 enforces only in session 1
        page.click("#session-rows tr.session-row")
        page.wait_for("document.getElementById('transcript').dataset.session !== undefined")
        dom = page.eval("""(() => { const t = document.getElementById('transcript'); return {
            title: t.querySelector('h3').textContent,
            enforced: [...t.querySelectorAll('.msg.user.enforced')].map(m => m.textContent),
            users: t.querySelectorAll('.msg.user').length, agents: t.querySelectorAll('.msg.agent').length,
            drafts: [...t.querySelectorAll('.draft.changed')].map(d => d.textContent),
            verdict: t.querySelector('.verdict').textContent, recalled: t.querySelectorAll('.recalled').length,
            notes_new: [...t.querySelectorAll('.notes li.new')].map(li => li.textContent),
            selected: document.querySelectorAll('#session-rows tr.selected').length }; })()""")
        assert dom["title"] == "memory=retrieval, max_turns=10 | demo | user 2 | session 1 | problem 0"
        assert len(dom["enforced"]) == 1 and "Please use bullet points" in dom["enforced"][0]
        assert (dom["users"], dom["agents"]) == (3, 3)  # the opening message, then three exchanges
        assert dom["drafts"][-1].endswith("FINAL: 3") and "accuracy 1" in dom["verdict"]
        assert dom["recalled"] == 2 and dom["selected"] == 1
        assert any("bullet points" in n for n in dom["notes_new"])  # the note this session taught
        shot = tmp_path / "viewer.png"
        page.screenshot(shot, "#viewer")
        page.eval("document.getElementById('transcript').scrollTop = 1e6")
        page.screenshot(tmp_path / "viewer_end.png", "#transcript")  # the verdict and the notes after
        # a failed session filter on these runs shows nothing, and says so
        page.select("#f-outcome", "failed")
        assert count() == 0 and page.eval("document.getElementById('page-info').textContent") == "none"
        assert page.errors == []
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.shape[0] > 400 and img.std() > 0.05, f"blank screenshot {shot}"
    print(f"viewer screenshot: {shot}")


def test_html_report_renders_with_figures(runs, tmp_path):
    from tests.integration.chromium import Chromium, chromium_path

    if chromium_path() is None:
        pytest.skip("chromium is not installed")
    assert report(runs["demo_none"], runs["demo_memory"], "--out", tmp_path, "--transcripts", "none").returncode == 0
    with Chromium(tmp_path / "profile") as page:
        page.open((tmp_path / "report.html").as_uri())
        page.wait_for("document.body.dataset.viewer === 'ready'")
        images = page.eval("[...document.images].filter(i => i.complete && i.naturalWidth > 1000).length")
        assert images == 10  # nine metrics and the preference categories
        assert page.eval("document.querySelectorAll('table').length") >= 8
        assert "0 of 0 sessions (32 more in the report" in page.eval("document.getElementById('f-count').textContent")


def test_viewer_compares_searches_sorts_and_links_in_headless_chromium(runs, tmp_path):
    from tests.integration.chromium import Chromium, chromium_path

    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    res = report(runs["demo_none"], runs["demo_memory"], runs["sums_memory"], "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    count = "document.querySelectorAll('#session-rows tr').length"
    column = "(i => [...document.querySelectorAll('#session-rows tr')].map(r => r.cells[i].textContent))"
    with Chromium(tmp_path / "profile") as page:
        page.open((tmp_path / "report.html").as_uri())
        page.wait_for("document.body.dataset.viewer === 'ready'")
        assert page.eval(count) == 48
        # text search reaches into the sessions (the problem text of one sums problem, any case)
        page.eval("(() => { const s = document.getElementById('f-search'); s.value = 'ADD 1 AND 3';"
                  " s.dispatchEvent(new Event('input')); })()")  # fmt: skip
        page.wait_for("document.getElementById('f-count').dataset.query === 'add 1 and 3'")
        assert page.eval(count) == 4 and set(page.eval(f"{column}(1)")) == {"sums"}
        page.eval("(() => { const s = document.getElementById('f-search'); s.value = ''; s.dispatchEvent(new Event('input')); })()")
        page.wait_for("document.getElementById('f-count').dataset.query === ''")
        # sorting the session list: by user, then the other way
        page.click("#session-head th[data-col='3']")
        users = [int(u) for u in page.eval(f"{column}(2)")]
        assert users == sorted(users) and users[0] == 0
        page.click("#session-head th[data-col='3']")
        assert int(page.eval(f"{column}(2)")[0]) == 3
        # sorting a report table by a column of numbers with intervals ("12.5 [0.0, 25.0]")
        ues = "[...document.querySelectorAll('#results + div tbody tr')].map(r => parseFloat(r.cells[6].textContent))"
        page.eval("document.querySelector('#results + div th:nth-child(7)').click()")
        assert page.eval(ues) == sorted(page.eval(ues)) and len(set(page.eval(ues))) > 1
        page.eval("document.querySelector('#results + div th:nth-child(7)').click()")
        assert page.eval(ues) == sorted(page.eval(ues), reverse=True)
        # a row of the results table opens its sessions in the viewer
        page.eval("[...document.querySelectorAll('#results + div tbody tr')].find(r => r.cells[0].textContent === 'demo'"
                  " && r.cells[1].textContent === 'memory=retrieval').cells[3].click()")  # fmt: skip
        page.wait_for("document.getElementById('f-count').dataset.query === ''")
        assert page.eval(count) == 16
        assert page.eval("document.getElementById('f-setting').selectedOptions[0].textContent") == "memory=retrieval"
        # a point of a learning curve (session 4 of memory=retrieval on demo) shows the sessions behind it
        point = ("[...document.querySelectorAll('#curves ~ figure a.point')].find(a => a.dataset.setting === 'memory=retrieval'"
                 " && a.dataset.dataset === 'demo' && a.dataset.session === '4')")  # fmt: skip
        assert page.eval(f"{point}.title").startswith("memory=retrieval, session 4: ")
        page.eval(f"{point}.click()")
        assert page.eval(count) == 4 and set(page.eval(f"{column}(3)")) == {"4"}
        assert set(page.eval(f"{column}(0)")) == {"memory=retrieval"} and set(page.eval(f"{column}(1)")) == {"demo"}
        page.select("#f-session", "")
        # the same user and problem with memory and without, side by side
        page.select("#f-user", "1")
        page.click("#session-rows tr.session-row:nth-child(2)")
        page.wait_for("document.getElementById('transcript').dataset.session !== undefined")
        page.select("#compare-with", page.eval("document.querySelector('#compare-with option:nth-child(2)').value"))
        page.wait_for("document.getElementById('transcript').dataset.compare !== undefined")
        panes = page.eval("""[...document.querySelectorAll('#transcript .pane')].map(p => ({
            title: p.querySelector('h3').textContent, enforced: p.querySelectorAll('.msg.user.enforced').length,
            calls: [...p.querySelectorAll('.msg .call summary')].map(s => s.textContent),
            raw: p.querySelector('.msg.user .call pre.raw').textContent,
            judge: p.querySelector('.verdict .call summary').textContent }))""")
        assert [p["title"] for p in panes] == ["memory=retrieval | demo | user 1 | session 2 | problem 1",
                                               "memory=none | demo | user 1 | session 2 | problem 1"]  # fmt: skip
        assert [p["enforced"] for p in panes] == [0, 1]  # memory spared this user the reminder
        assert all(c.startswith("1 call(s), ") and "prompt +" in c and c.endswith(" s") for p in panes for c in p["calls"])
        assert '"draft_answer"' in panes[0]["raw"] and panes[0]["judge"].startswith("1 call(s)")
        assert "-vs-" in page.eval("location.hash")
        # the comparison stays on when another session of the user is opened
        page.click("#session-rows tr.session-row:nth-child(3)")
        page.wait_for("document.getElementById('transcript').dataset.session !== undefined"
                      " && document.querySelector('#transcript .pane h3').textContent.includes('session 3')")  # fmt: skip
        assert page.eval("document.querySelectorAll('#transcript .pane').length") == 2
        assert page.errors == []
