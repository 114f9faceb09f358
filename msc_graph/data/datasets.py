"""The benchmark datasets: registry, hub loading, the published sampling, and the JSON cache.

Sampling equals the published one: shuffle the ``test`` split with seed 42 and take the first N
(test set); the train set is the rest of the shuffled split, first N. Samples are cached as
``<cache>/<dir>/testset_size{N}_seed{seed}.json`` (the published layout), so the published cache
folder works as is. A request for N items may be served by a cached file with more items: the
seeded sample of N is a prefix of the sample of M > N.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msc_graph.data.jsonfile import read_record_list


class DatasetError(ValueError):
    """A dataset could not be loaded; the message names the dataset, where we looked and the fix."""


class Problem(BaseModel):
    """One benchmark problem as the session graph uses it."""

    model_config = ConfigDict(extra="allow")

    problem: str = Field(min_length=1)
    solution: str


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    cache_dir: str
    hub_path: str | None
    hub_config: str | None
    task_description: str
    to_problem: Callable[[dict], dict] | None = None


def _math_hard(row: dict) -> dict:
    return {"problem": row["problem"], "solution": row["solution"], "level": row.get("level"), "type": row.get("type")}


def _math_500(row: dict) -> dict:
    return {
        "problem": row["problem"],
        "solution": row["solution"],
        "level": row.get("level"),
        "type": row.get("subject"),
    }


def _logiqa(row: dict) -> dict:
    return {"problem": row["query"], "solution": row["choices"][row["gold"][0]]}


def _mmlu(row: dict) -> dict:
    choices = "\n".join(f"{i}. {c}" for i, c in enumerate(row["choices"]))
    return {"problem": f"{row['question']}\n\nChoices:\n{choices}", "solution": row["choices"][row["answer"]]}


def _medqa(row: dict) -> dict:
    options = "\n".join(f"{k}. {v}" for k, v in row["options"].items())
    return {"problem": f"{row['question']}\n\nOptions:\n{options}", "solution": row["answer"]}


MATH_TASK = "You are trying to solve a math problem."
DATASETS: dict[str, DatasetSpec] = {
    "math-hard": DatasetSpec("math-hard", "math_hard", "lighteval/MATH-Hard", None, MATH_TASK, _math_hard),
    "math-500": DatasetSpec("math-500", "math-500", "HuggingFaceH4/MATH-500", None, MATH_TASK, _math_500),
    "logiqa": DatasetSpec(
        "logiqa", "logiqa", "hails/agieval-logiqa-en", None, "You are trying to solve a logical reasoning problem.", _logiqa
    ),
    "mmlu": DatasetSpec(
        "mmlu", "mmlu", "cais/mmlu", "all", "You are trying to solve a multiple choice problem.", _mmlu
    ),
    "medqa": DatasetSpec(
        "medqa", "medqa", "GBaker/MedQA-USMLE-4-options", None, "You are trying to solve a medical problem.", _medqa
    ),
    "demo": DatasetSpec("demo", "demo", None, None, "You are trying to solve a short practice problem.", None),
}
#: Other spellings people use for the same datasets.
ALIASES = {"math_hard": "math-hard", "math_500": "math-500", "math500": "math-500"}
BUILTIN_DIR = Path(__file__).parent / "builtin"
_CACHE_RE = re.compile(r"^testset_size(\d+)_seed(\d+)\.json$")


def default_cache_dir() -> Path:
    env = os.environ.get("MSC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "msc_graph" / "datasets"


def resolve_name(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in DATASETS and not _is_file_dataset(name):
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(
            f"unknown dataset {name!r}: choose one of {known}, or give a path to a .json/.jsonl file "
            "of {problem, solution} records"
        )
    return key


def _is_file_dataset(name: str) -> bool:
    return name.endswith((".json", ".jsonl")) or os.sep in name


@dataclass
class LoadedDataset:
    """Problems plus where they came from (recorded in the run manifest)."""

    name: str
    problems: list[dict]
    task_description: str
    source: str

    def __len__(self) -> int:
        return len(self.problems)


def _validate(problems: list, source: str) -> list[dict]:
    out = []
    for idx, item in enumerate(problems):
        try:
            out.append(Problem.model_validate(item).model_dump())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise DatasetError(
                f"{source}: item {idx} is not a {{problem, solution}} record ({where}: {first['msg']}); "
                "fix or regenerate the file"
            ) from None
    return out


def load_problem_file(path: str | Path) -> list[dict]:
    """A custom dataset: a JSON list or a JSONL file of ``{problem, solution}`` records."""
    items = read_record_list(
        path, what="dataset file", fields="{problem, solution}", wrapper_key="problems",
        missing_hint="check the path", error=DatasetError,
    )  # fmt: skip
    return _validate(items, str(path))


def find_cached(cache_dir: Path, spec: DatasetSpec, size: int, seed: int) -> Path | None:
    """The smallest cached test sample with at least ``size`` items for this seed."""
    folder = cache_dir / spec.cache_dir
    if not folder.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for entry in folder.iterdir():
        m = _CACHE_RE.match(entry.name)
        if m and int(m.group(2)) == seed and int(m.group(1)) >= size and (best is None or int(m.group(1)) < best[0]):
            best = (int(m.group(1)), entry)
    return best[1] if best else None


def _load_from_hub(spec: DatasetSpec, size: int, seed: int, cache_dir: Path) -> Path:
    from datasets import load_dataset

    assert spec.hub_path is not None and spec.to_problem is not None
    args = (spec.hub_path, spec.hub_config) if spec.hub_config else (spec.hub_path,)
    split = load_dataset(*args, split="test").shuffle(seed=seed)
    test_rows = split.select(range(min(size, len(split))))
    train_rows = split.select(range(len(test_rows), min(len(split), len(test_rows) + size)))
    folder = cache_dir / spec.cache_dir
    folder.mkdir(parents=True, exist_ok=True)
    for label, rows in (("testset", test_rows), ("trainset", train_rows)):
        path = folder / f"{label}_size{size}_seed{seed}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps([spec.to_problem(dict(r)) for r in rows], indent=1), encoding="utf-8")
        tmp.replace(path)
    return folder / f"testset_size{size}_seed{seed}.json"


def load_dataset_problems(
    name: str, size: int, *, cache_dir: str | Path | None = None, seed: int = 42, allow_download: bool = True
) -> LoadedDataset:
    """Load ``size`` problems of a benchmark dataset (from the cache, else the hub), a file, or ``demo``."""
    if size < 1:
        raise DatasetError(f"eval size must be at least 1, got {size}")
    if _is_file_dataset(name) and ALIASES.get(name, name) not in DATASETS:
        problems = load_problem_file(name)
        if size > len(problems):
            raise DatasetError(f"dataset file {name} has {len(problems)} problems, fewer than the {size} asked for")
        return LoadedDataset(Path(name).stem, problems[:size], "You are trying to solve a problem.", str(Path(name).resolve()))
    key = resolve_name(name)
    spec = DATASETS[key]
    if key == "demo":
        problems = load_problem_file(BUILTIN_DIR / "demo_problems.json")
        if size > len(problems):
            raise DatasetError(f"the built-in demo dataset has {len(problems)} problems; ask for at most that many")
        return LoadedDataset(key, problems[:size], spec.task_description, "builtin:demo_problems.json")
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = find_cached(cache, spec, size, seed)
    if path is None:
        expected = cache / spec.cache_dir / f"testset_size{size}_seed{seed}.json"
        if not allow_download:
            raise DatasetError(
                f"dataset {key!r}: no cached sample of {size} problems (looked for {expected} or a larger "
                f"testset_size*_seed{seed}.json beside it) and downloading is off; point --data-dir / "
                "MSC_DATA_DIR at a cache that has it, or ask for fewer problems"
            )
        try:
            path = _load_from_hub(spec, size, seed, cache)
        except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear error
            raise DatasetError(
                f"dataset {key!r}: nothing cached at {expected} (nor a larger sample) and the hub "
                f"({spec.hub_path}) could not be reached ({type(exc).__name__}). Fix: run once where the "
                "hub is reachable to fill the cache, or point --data-dir / MSC_DATA_DIR at a folder with "
                f"{spec.cache_dir}/testset_size{{N}}_seed{seed}.json"
            ) from None
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, list) or len(items) < size:
        raise DatasetError(f"dataset cache {path} is malformed or too short; delete it to rebuild")
    return LoadedDataset(key, _validate(items[:size], str(path)), spec.task_description, str(path.resolve()))
