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
