"""The benchmark datasets: registry, hub loading, the published sampling, and the JSON cache.

Sampling equals the published one: shuffle the ``test`` split with seed 42 and take the first N
(test set); the train set is the rest of the shuffled split, first N. Samples are cached as
``<cache>/<dir>/testset_size{N}_seed{seed}.json`` (the published layout), so the published cache
folder works as is. A request for N items may be served by a cached file with more items: the
seeded sample of N is a prefix of the sample of M > N.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msc_graph.data.jsonfile import check_input_file, check_record_texts, read_record_list


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
Split = Literal["test", "train"]


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
    #: What keys results (``settings_hash``): the name of a registered dataset; for a file, its
    #: name and a hash of its content, so two different files never share results.
    key: str = ""
    #: A registered dataset's content when it is not the known sample of its name (another cache,
    #: another hub revision): a digest of the problems used, which then keys results too; "" for
    #: the known samples (the published ones, the demo) and for files (their key has it).
    content_key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.name

    def __len__(self) -> int:
        return len(self.problems)


def problem_chain(problems: list[dict]) -> str:
    """A short digest of each problem, in order: a sample's identity, and a prefix of it is a
    smaller sample's."""
    return "".join(hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:8] for p in problems)


def content_key(name: str, problems: list[dict], split: str = "test", seed: int = 42) -> str:
    """``""`` when ``problems`` are (a prefix of) the known sample of ``name``; else their digest."""
    known = json.loads((BUILTIN_DIR / "known_samples.json").read_text(encoding="utf-8"))
    chain = problem_chain(problems)
    sample = known.get(name if name == "demo" else f"{name}/{split}/seed{seed}", "")
    if chain and sample.startswith(chain):
        return ""
    return hashlib.sha256(chain.encode()).hexdigest()[:12]


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


def cache_file_name(split: Split, size: int, seed: int) -> str:
    return f"{split}set_size{size}_seed{seed}.json"


def find_cached(cache_dir: Path, spec: DatasetSpec, size: int, seed: int, split: Split = "test") -> Path | None:
    """The cached sample for this split, size and seed. A test request may be served by a larger
    cached test sample (the seeded sample of N is a prefix of the sample of M > N); a train sample
    depends on the size of the test sample it excludes, so only its own size serves it."""
    folder = cache_dir / spec.cache_dir
    if not folder.is_dir():
        return None
    exact = folder / cache_file_name(split, size, seed)
    if exact.is_file():
        return exact
    if split == "train":
        return None
    best: tuple[int, Path] | None = None
    for entry in folder.iterdir():
        m = _CACHE_RE.match(entry.name)
        if m and int(m.group(2)) == seed and int(m.group(1)) >= size and (best is None or int(m.group(1)) < best[0]):
            best = (int(m.group(1)), entry)
    return best[1] if best else None


def sample_rows(rows: list[dict], size: int) -> tuple[list[dict], list[dict]]:
    """The published samples from an already shuffled split: the test sample is its first ``size``
    items; the train sample is the first ``size`` items whose problem is not in the test sample."""
    test = rows[:size]
    seen = {r["problem"] for r in test}
    train: list[dict] = []
    for r in rows:
        if len(train) >= size:
            break
        if r["problem"] not in seen:
            train.append(r)
    return test, train


def _load_from_hub(spec: DatasetSpec, size: int, seed: int, cache_dir: Path, split: Split) -> Path:
    from datasets import load_dataset

    assert spec.hub_path is not None and spec.to_problem is not None
    args = (spec.hub_path, spec.hub_config) if spec.hub_config else (spec.hub_path,)
    shuffled = load_dataset(*args, split="test").shuffle(seed=seed)
    rows = [spec.to_problem(dict(r)) for r in shuffled]
    test_rows, train_rows = sample_rows(rows, size)
    folder = cache_dir / spec.cache_dir
    folder.mkdir(parents=True, exist_ok=True)
    for label, chosen in (("test", test_rows), ("train", train_rows)):
        path = folder / cache_file_name(label, size, seed)  # type: ignore[arg-type]
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(chosen, indent=1), encoding="utf-8")
        tmp.replace(path)
    return folder / cache_file_name(split, size, seed)


def load_dataset_problems(
    name: str, size: int, *, cache_dir: str | Path | None = None, seed: int = 42, allow_download: bool = True,
    split: Split = "test",
) -> LoadedDataset:  # fmt: skip
    """Load ``size`` problems of a benchmark dataset (from the cache, else the hub), a file, or ``demo``."""
    if size < 1:
        raise DatasetError(f"eval size must be at least 1, got {size}")
    if _is_file_dataset(name) and ALIASES.get(name, name) not in DATASETS:
        problems = load_problem_file(name)
        if size > len(problems):
            raise DatasetError(f"dataset file {name} has {len(problems)} problems, fewer than the {size} asked for")
        digest = hashlib.sha256(json.dumps(problems[:size], sort_keys=True).encode()).hexdigest()[:12]
        return LoadedDataset(
            Path(name).stem, problems[:size], "You are trying to solve a problem.", str(Path(name).resolve()),
            key=f"{Path(name).stem}@{digest}",
        )
    key = resolve_name(name)
    spec = DATASETS[key]
    if key == "demo":
        problems = load_problem_file(BUILTIN_DIR / "demo_problems.json")
        if size > len(problems):
            raise DatasetError(f"the built-in demo dataset has {len(problems)} problems; ask for at most that many")
        chosen = problems[:size]
        return LoadedDataset(key, chosen, spec.task_description, "builtin:demo_problems.json", content_key=content_key(key, chosen))
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = find_cached(cache, spec, size, seed, split)
    if path is None:
        expected = cache / spec.cache_dir / cache_file_name(split, size, seed)
        larger = f" or a larger testset_size*_seed{seed}.json beside it" if split == "test" else ""
        if not allow_download:
            raise DatasetError(
                f"dataset {key!r}: no cached {split} sample of {size} problems (looked for {expected}{larger}) and "
                "downloading is off; point --data-dir / MSC_DATA_DIR at a cache that has it, or ask for fewer problems"
            )
        try:
            path = _load_from_hub(spec, size, seed, cache, split)
        except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear error
            raise DatasetError(
                f"dataset {key!r}: nothing cached at {expected}{larger} and the hub ({spec.hub_path}) could not be "
                f"reached ({type(exc).__name__}). Fix: run once where the hub is reachable to fill the cache, or "
                f"point --data-dir / MSC_DATA_DIR at a folder with {spec.cache_dir}/{cache_file_name(split, size, seed)}"
            ) from None
    try:
        check_input_file(path, "dataset cache", DatasetError)
        items = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset cache {path} is not valid UTF-8 JSON ({type(exc).__name__}); delete it to rebuild") from None
    if not isinstance(items, list) or len(items) < size:
        raise DatasetError(f"dataset cache {path} is malformed or too short; delete it to rebuild")
    check_record_texts(items[:size], path, "dataset cache", DatasetError, entry="item")
    chosen = _validate(items[:size], str(path))
    return LoadedDataset(
        key, chosen, spec.task_description, str(path.resolve()), content_key=content_key(key, chosen, split, seed)
    )
