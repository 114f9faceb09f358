"""Result files: a torn last line is skipped on read and cut off before appending."""

from __future__ import annotations

import pytest

from msc_graph.results import ResultsError, read_records, repair_tail


@pytest.mark.parametrize(
    "content, records, repaired",
    [
        ('{"a": 1}\n{"a": 2', [{"a": 1}], '{"a": 1}\n'),  # torn by a kill mid-write
        ('{"a": 1}\n{"a": 2}', [{"a": 1}, {"a": 2}], '{"a": 1}\n{"a": 2}\n'),  # complete, no newline
        ('{"a": 1}\n', [{"a": 1}], '{"a": 1}\n'),
        ('{"x": "' + "y" * 200_000, [], ""),  # a torn line longer than one read block
    ],
)
def test_torn_tail_is_skipped_then_repaired(tmp_path, content, records, repaired):
    path = tmp_path / "r.jsonl"
    path.write_text(content)
    assert read_records(path) == records
    repair_tail(path)
    assert path.read_text() == repaired
    assert read_records(path) == records


def test_corruption_before_the_last_line_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ResultsError, match="line 2 is not valid JSON"):
        read_records(path)


@pytest.mark.parametrize("command", ["merge", "rescore", "report"])
def test_an_unreadable_manifest_is_one_line_naming_it_and_nothing_is_written(tmp_path, capsys, command):
    from msc_graph.cli import merge, report, rescore

    results = tmp_path / "a.jsonl"
    results.write_text('{"user_id": 0, "session_index": 0, "settings_hash": "h", "task_success": 1}\n')
    (tmp_path / "a.jsonl.manifest.json").write_text("{broken")
    out = tmp_path / "out"
    argv = {"merge": [str(results), "-o", str(out / "m.jsonl")],
            "rescore": [str(results), "-o", str(out), "--judge-api-base", "http://127.0.0.1:9/v1", "--judge-model", "j", "--no-check"],
            "report": [str(results), "--out", str(out)]}[command]  # fmt: skip
    main = {"merge": merge.main, "rescore": rescore.main, "report": report.main}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "a.jsonl.manifest.json: not a readable manifest" in err[0], err
    assert not out.exists()
