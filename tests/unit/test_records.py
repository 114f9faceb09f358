"""The session record: one typed model; the JSON on disk; files of earlier versions still read."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from msc_graph.data import builtin_profiles
from msc_graph.results.files import encode_record
from msc_graph.run.records import SessionJob, SessionRecord, build_record, failed_record

SETTING = {"dataset": "demo", "experiment_type": "agent_without_memory", "memory": "none", "settings_hash": "h",
           "agent_model": "a", "user_model": "u"}  # fmt: skip
JOB = SessionJob(builtin_profiles(1)[0], 2, 5, {"problem": "6 x 7?", "solution": "42", "level": "Level 5"})
STATE = {
    "messages": [{"role": "assistant", "content": "How can I help you?"}, {"role": "user", "content": "TERMINATE"}],
    "turns": [{"role": "user", "turn": 1, "enforce_preferences": True, "draft_answer": "42"}],
    "draft_answer": "42", "verdict": {"accuracy": 1}, "task_success": 1, "ended_by": "terminate",
    "usage": {"user": {"calls": 1}}, "failure": None,
}  # fmt: skip


def test_a_record_is_built_from_the_final_state_with_its_metrics():
    r = build_record(JOB, STATE, SETTING, 0.0, memory=False)
    assert (r.user_id, r.session_index, r.problem_id) == (0, 2, 5)
    assert (r.task_success, r.user_effort, r.length, r.ended_by) == (1, 1, 2, "terminate")
    data = r.to_json_dict()
    assert "notes_before" not in data and data["problem_fields"] == {"level": "Level 5"}
    assert list(data)[:4] == ["dataset", "experiment_type", "memory", "settings_hash"]  # the order on disk


def test_memory_records_carry_the_memory_before_and_after():
    r = build_record(JOB, {**STATE, "notes_before": [{"preference": "x"}]}, SETTING, 0.0, memory=True)
    assert r.notes_before == r.notes_after == [{"preference": "x"}]  # no learning: unchanged
    assert r.retrieved == [] and "notes_after" in r.to_json_dict()


def test_endings_and_failure_stages_are_closed_sets():
    with pytest.raises(ValidationError):
        build_record(JOB, {**STATE, "ended_by": "gave up"}, SETTING, 0.0, memory=False)
    with pytest.raises(ValidationError):
        failed_record(JOB, SETTING, 0.0, {"stage": "somewhere", "reason": "x", "kind": "internal"}, False, None)
    r = failed_record(JOB, SETTING, 0.0, {"stage": "internal", "reason": "bug", "kind": "internal"}, False, None)
    assert r.task_success is None and r.ended_by == "failure" and r.failure.kind == "internal"


def test_records_of_earlier_versions_read_and_get_a_failure_class():
    old = {**SETTING, "user_id": 1, "session_index": 0, "problem_id": 0, "problem": "p", "solution": "s",
           "failure": {"stage": "user", "reason": "InternalServerError: Error code: 500 - boom"}, "extra_field": 3}  # fmt: skip
    r = SessionRecord.model_validate(old)
    assert r.failure.kind == "infrastructure" and r.to_json_dict()["extra_field"] == 3
    content = SessionRecord.model_validate({**old, "failure": {"stage": "user", "reason": "unparseable reply after 4 attempt(s)"}})
    assert content.failure.kind == "content"


def test_any_text_a_model_writes_makes_a_valid_line():
    r = build_record(JOB, {**STATE, "draft_answer": "x\ud83dy\x00z"}, SETTING, 0.0, memory=False)
    line = encode_record(r.to_json_dict())
    back = json.loads(line)
    assert back["text_escaped"] is True and back["draft_answer"] == "x\\ud83dy\\u0000z"
    assert line.decode("utf-8").endswith("\n") and line.count(b"\n") == 1


def test_a_record_that_cannot_be_written_becomes_that_sessions_failure_with_the_runs_setting(tmp_path, monkeypatch):
    from msc_graph.config import SessionContext
    from msc_graph.results.files import RecordWriter, read_records
    from msc_graph.run.progress import Progress
    from msc_graph.run.session import SessionRunner
    from msc_graph.run.writer import SessionWriter

    real_write, calls = RecordWriter.write, []

    def write_once_broken(self, data):  # the first write fails as an unserialisable record would
        calls.append(data)
        if len(calls) == 1:
            raise ValueError("Out of range float values are not JSON compliant")
        return real_write(self, data)

    monkeypatch.setattr(RecordWriter, "write", write_once_broken)
    runner = SessionRunner(SessionContext(), SETTING, {JOB.profile.i: "p0"}, "", memory=False)
    out = tmp_path / "r.jsonl"
    writer = SessionWriter(out, runner, Progress(1, 0, False, []), [])
    kept = writer.emit(JOB, build_record(JOB, STATE, {**SETTING, "profile_hash": "p0"}, 0.0, memory=False))
    writer.close()
    (on_disk,) = read_records(out)
    assert on_disk == kept.to_json_dict() and on_disk["failure"]["stage"] == "internal"
    assert "could not be written: ValueError" in on_disk["failure"]["reason"] and on_disk["task_success"] is None
    assert {k: on_disk[k] for k in (*SETTING, "profile_hash")} == {**SETTING, "profile_hash": "p0"}  # still counted in its setting
    assert (on_disk["user_id"], on_disk["session_index"]) == (JOB.profile.i, JOB.session_index)


def test_resume_merge_report_and_rescore_count_the_same_record_of_each_key(tmp_path):
    """One rule (``records.latest_by_key``): the last record of a key counts, wherever it is read."""
    from msc_graph.records import RecordKey, record_key
    from msc_graph.results.files import RecordWriter, read_records
    from msc_graph.results.merge import merge_files
    from msc_graph.results.rescore import _counted
    from msc_graph.results.settings import load_results
    from msc_graph.run.resume import latest_of_setting

    failed = failed_record(JOB, SETTING, 0.0, {"stage": "user", "reason": "Timeout", "kind": "infrastructure"}, False, None)
    done = build_record(JOB, STATE, SETTING, 0.0, memory=False)
    other = build_record(SessionJob(JOB.profile, 3, 6, JOB.problem), {**STATE, "task_success": 0}, SETTING, 0.0, memory=False)
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        for r in (failed, other, done):  # the failed attempt at session 2, then session 3, then session 2 again
            w.write(r.to_json_dict())
    want = {(0, 2, 1), (0, 3, 0)}
    seen = lambda rs: {(r["user_id"], r["session_index"], r["task_success"]) for r in rs}  # noqa: E731
    assert seen(latest_of_setting(read_records(path), "h").values()) == want  # resume
    assert seen(r.model_dump() for r in merge_files([path]).records) == want  # merge
    assert seen(load_results([path]).records) == want  # report
    assert seen(_counted(read_records(path))) == want  # rescore
    assert record_key(done) == record_key(done.to_json_dict()) == RecordKey("h", "demo", 0, 2)  # typed or read
