"""Result files and what is made from them: reading and writing records (``files``), merging
shards (``merge``), statistics (``stats``), the run summary (``summary``), the report
(``report``) and exports (``export_published``, ``export_training``)."""

from msc_graph.results.files import (
    RecordWriter,
    ResultsError,
    manifest_path,
    read_records,
    read_result_files,
    repair_tail,
    write_json_atomic,
)

__all__ = [
    "RecordWriter",
    "ResultsError",
    "manifest_path",
    "read_records",
    "read_result_files",
    "repair_tail",
    "write_json_atomic",
]
