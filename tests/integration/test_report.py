"""runners/report.py on result files made by a test run, and the HTML page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from msc_graph.results import read_records
from msc_graph.results.report import build_report, effect_rows
from tests.helpers import REPO, cli_args, run_cli


@pytest.fixture(scope="module")
def result_files(tmp_path_factory):
    from tests.helpers import start_scripted_server

    folder = tmp_path_factory.mktemp("results")
    server = start_scripted_server()
    try:
        paths = []
        for exp in ("agent_without_memory", "agent_with_memory"):
            out = folder / f"{exp}.jsonl"
            res = run_cli("--experiment_type", exp, "--dataset", "demo", "--eval_size", "4", "--users", "4",
                          *cli_args(server.url), "--output_file", str(out), "--no-progress")  # fmt: skip
            assert res.returncode == 0, res.stderr
            paths.append(out)
        return paths
    finally:
        server.stop()


def test_report_tables_effects_and_plots(result_files, tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "runners" / "report.py"), *map(str, result_files), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name in ("report.md", "report.html", "summary.csv", "effects.csv", "curves.csv", "preferences.csv", "costs.csv",
                 "curves_demo.png", "curves_demo.svg"):  # fmt: skip
        assert (tmp_path / name).is_file(), name
    md = (tmp_path / "report.md").read_text()
    assert "memory=retrieval vs none" in md and "TS %" in md
    # the scripted user enforces once per session until the agent learns: memory saves 3 of 4 enforcements
    import csv

    (effect,) = list(csv.DictReader(open(tmp_path / "effects.csv")))
    assert effect["pairs"] == "16" and effect["dTS %"] == "0.00 [0.00, 0.00]"
    mean, low, high = (float(x) for x in effect["dUE"].replace("[", "").replace("]", "").replace(",", "").split())
    assert mean == -0.75 and low < mean < high < 0  # paired diffs per user: 0, -1, -1, -1
    import matplotlib.image as mpimg

    img = mpimg.imread(tmp_path / "curves_demo.png")
    assert img.shape[0] > 200 and img.shape[1] > 600
    assert img[..., :3].std() > 0.05, "the plot is blank"
    assert (tmp_path / "curves_demo.svg").read_text().count("<path") > 10


def test_paired_effect_on_a_constructed_case():
    def rec(mem, user, session, ts, ue, length):
        return {"dataset": "d", "agent_model": "m", "memory": mem, "user_id": user, "session_index": session,
                "problem_id": session, "task_success": ts, "user_effort": ue, "length": length, "failure": None}  # fmt: skip

    records = [rec("none", u, s, 0, 2, 10) for u in range(5) for s in range(4)]
    records += [rec("retrieval", u, s, 1, 1, 8) for u in range(5) for s in range(4)]
    records.append({**rec("retrieval", 0, 9, 1, 0, 2), "failure": {"stage": "user", "reason": "x"}})
    (row,) = effect_rows(records)
    assert row["pairs"] == 20
    assert row["dTS %"] == "100.00 [100.00, 100.00]" and row["dUE"] == "-1.00 [-1.00, -1.00]"
    assert row["dLen"] == "-2.00 [-2.00, -2.00]"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_in_headless_chromium(result_files, tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    build_report([r for p in result_files for r in read_records(p)], tmp_path)
    page = (tmp_path / "report.html").as_uri()
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert "<table>" in dom.stdout and "data:image/png;base64" in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1300,1400", page], capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    assert img.std() > 0.05, "the screenshot is blank"
    # the table borders and the plot lines are there: many distinct colours, not just text on white
    colours = {tuple((px * 255).astype(int)) for px in img[::4, ::4].reshape(-1, 3)}
    assert len(colours) > 50
