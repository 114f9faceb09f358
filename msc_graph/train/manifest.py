"""The manifest of a training run (``<output_dir>/manifest.json``), like a benchmark run's: the
settings, package versions, the code, the data (files, their digests, how many examples), start and end, how
it ended, and what it measured (rewards per logged step, step times, judge calls)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from msc_graph.results.files import write_json_atomic
from msc_graph.run.manifest import now, provenance_fields
from msc_graph.security import redact_tree
from msc_graph.train.settings import TrainSettings

PACKAGES = ("msc_graph", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "gguf", "vllm")


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class TrainManifest:
    """Written when training starts and again when it ends (atomically)."""

    def __init__(self, settings: TrainSettings, examples: int) -> None:
        self.path = Path(settings.output_dir) / "manifest.json"
        self.data: dict = redact_tree({
            "kind": "reflection-grpo",
            "settings": settings.model_dump(),
            "data": {"files": {p: file_digest(p) for p in settings.data}, "examples": examples},
            **provenance_fields(PACKAGES),
        })  # fmt: skip

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.data)

    def finish(self, ended: str, **extra) -> None:
        """``ended``: finished | interrupted | failed: <reason>."""
        self.data.update(finished=now(), ended=ended, **extra)
        self.write()
