"""Writing each finished session at once: one line per record, whatever the record holds.

A record that cannot be serialised becomes that session's failure record (stage ``internal``);
a file that cannot be written at all (disk full, a removed folder) stops the run with one line:
what finished is saved, and a rerun continues.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from msc_graph.outcomes import failure
from msc_graph.results.files import RecordWriter
from msc_graph.run.progress import Progress
from msc_graph.run.records import SessionJob, SessionRecord, failed_record
from msc_graph.run.session import SessionRunner


class OutputFailed(Exception):
    """The results file cannot be written: the run stops (finished sessions are on disk)."""


@dataclass
class SessionWriter:
    """Appends each finished session to the results file and tells the progress line and ``on_record``."""

    output: Path
    runner: SessionRunner
    progress: Progress
    #: Every record that counts, the new ones appended as they are written.
    records: list[dict]
    on_record: Callable[[dict], None] | None = None
    new: int = 0
    notice: str = ""
    stopped_by: str | None = None
    file: RecordWriter = field(init=False)

    def __post_init__(self) -> None:
        self.file = RecordWriter(self.output)

    def emit(self, job: SessionJob, record: SessionRecord) -> SessionRecord:
        try:
            data = record.to_json_dict()
            self.file.write(data)
        except OSError as exc:
            self._stop(exc)
        except Exception as exc:  # noqa: BLE001 - this session's problem, not the run's
            reason = f"the record could not be written: {type(exc).__name__}: {exc}"[:500]
            record = failed_record(job, self.runner.setting_for(job), time.time(), failure("internal", reason, "internal"),
                                   self.runner.memory, record.notes_before)  # fmt: skip
            data = record.to_json_dict()
            try:
                self.file.write(data)
            except OSError as exc2:
                self._stop(exc2)
        self.records.append(data)
        self.new += 1
        self.progress.update(data)
        if self.on_record:
            self.on_record(data)
        return record

    def _stop(self, exc: OSError) -> None:
        self.stopped_by = "output error"
        self.notice = (
            f"cannot write to {self.output} ({exc.strerror or exc}); the run stopped. Finished sessions are saved: "
            "fix it and rerun the same command to continue"
        )
        print(f"error: {self.notice}", file=sys.stderr, flush=True)
        raise OutputFailed(self.notice)

    def close(self) -> None:
        self.file.close()
