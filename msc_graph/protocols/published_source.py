"""The published prompt texts, read at run time from the published code (never shipped here).

``--protocol published`` needs the study's own wording: its prompt templates (module-level
strings of ``collaborativeagents/prompts.py``), the line that introduces the selected notes (a
literal inside ``agents/collaborator_agent.py``) and the task description of each dataset
(``datasets/__init__.py``). They are read from a checkout of the published repository
(``--published-code PATH``) or from an installed ``collaborativeagents`` package, by parsing the
files with ``ast``: nothing of the published code is executed or imported.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: The templates a published-protocol run uses, by their names in the published prompts module.
TEMPLATES = (
    "user_system_prompt_profile_with_preferences",
    "agent_system_prompt",
    "agent_system_prompt_no_json",
    "reflective_agent_system_prompt",
    "reflective_agent_system_prompt_no_json",
    "update_agent_notes_prompt",
    "proper_scaffolding_prompt",
    "accuracy_prompt_qa",
)
PACKAGE = "collaborativeagents"
#: The digest of the published repository's texts when results began to be keyed by them: runs
#: reading these texts key nothing more, so results made before keep their hash. Never update it.
PUBLISHED_TEXTS = "570068b2d05f"


class PublishedCodeError(ValueError):
    """The published code cannot be found or read; the message names the flag that fixes it."""


@dataclass(frozen=True)
class PublishedTexts:
    """What a published-protocol run reads from the published code."""

    source: str
    templates: dict[str, str]
    termination_signal: str
    #: The line put before the notes the scaffolding call selected.
    notes_intro: str
    #: The task description of each dataset, by the published dataset name.
    task_descriptions: dict[str, str]

    def __hash__(self) -> int:
        return hash(self.source)

    def digest(self) -> str:
        """A short digest of every text a run reads (not where they came from): it keys results."""
        texts = [self.templates, self.termination_signal, self.notes_intro, self.task_descriptions]
        return hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()[:12]


def package_folder(path: str) -> Path:
    """The ``collaborativeagents`` folder: under ``path`` (a checkout), or the installed package."""
    if path:
        root = Path(path).expanduser()
        folder = root if root.name == PACKAGE else root / PACKAGE
        if not (folder / "prompts.py").is_file():
            raise PublishedCodeError(
                f"--published-code {path}: no {PACKAGE}/prompts.py there; give the root of a checkout of the "
                "published MultiSessionCollab repository"
            )
        return folder
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise PublishedCodeError(
            "--protocol published reads the published prompts from the published code: give --published-code PATH "
            f"(a checkout of the published repository) or install its {PACKAGE} package"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _module(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise PublishedCodeError(f"--published-code: cannot read {path} ({type(exc).__name__}: {exc})") from None


def _string_constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _notes_intro(tree: ast.Module) -> str:
    """The literal text of the f-string that puts the selected notes before the opening message."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            values = node.values
            for i, part in enumerate(values[1:], start=1):
                if isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.value.id == "scaffolded_notes":
                    before = values[i - 1]
                    if isinstance(before, ast.Constant) and isinstance(before.value, str):
                        return before.value
    raise PublishedCodeError("--published-code: the collaborator agent has no scaffolded-notes text where expected")


def _task_descriptions(tree: ast.Module) -> dict[str, str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            out: dict[str, str] = {}
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Dict):
                    for k, v in zip(value.keys, value.values, strict=True):
                        if isinstance(k, ast.Constant) and k.value == "task_description" and isinstance(v, ast.Constant):
                            out[str(key.value)] = str(v.value)
            if out:
                return out
    raise PublishedCodeError("--published-code: the datasets module lists no task descriptions")


@lru_cache(maxsize=8)
def load_published(path: str = "") -> PublishedTexts:
    """Read the published texts from ``path`` (a checkout) or the installed package."""
    folder = package_folder(path)
    constants = _string_constants(_module(folder / "prompts.py"))
    missing = [name for name in (*TEMPLATES, "termination_signal") if name not in constants]
    if missing:
        raise PublishedCodeError(f"--published-code: {folder / 'prompts.py'} lacks {', '.join(missing)}")
    return PublishedTexts(
        source=str(folder),
        templates={name: constants[name] for name in TEMPLATES},
        termination_signal=constants["termination_signal"],
        notes_intro=_notes_intro(_module(folder / "agents" / "collaborator_agent.py")),
        task_descriptions=_task_descriptions(_module(folder / "datasets" / "__init__.py")),
    )
