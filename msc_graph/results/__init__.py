"""Result files and what is made from them: reading and writing records (``files``), merging
shards (``merge``), statistics (``stats``, paired tests in ``paired_tests``), the run summary
(``summary``), the report (``report``: which records count and their settings in ``settings``,
per-session metrics in ``measures``, tables in ``tables`` and ``preferences``, ``figures``,
``render``, the models, dates and commits it names in ``provenance``, the transcript viewer in
``viewer`` and ``viewer_page``), re-grading with another judge (``rescore``) and exports
(``export_published``, ``export_training``)."""

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
