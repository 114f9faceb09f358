"""The memory designs a run can use: one entry each, naming the module that implements it.

A design is loaded only when a run uses it (``mem0`` and ``langmem`` bring heavy packages). A
name of the form ``package.module:factory`` loads a design from outside the project: ``factory``
is called with a :class:`~msc_graph.memory.designs.base.DesignSettings` and returns an object with
the :class:`~msc_graph.memory.designs.base.MemoryDesign` interface (``docs/memory.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: name -> "module:attribute" of the design's factory (a class is a factory too).
DESIGNS: dict[str, str] = {
    "none": "msc_graph.memory.designs.none:NoMemory",
    "notes": "msc_graph.memory.designs.notes:AllNotes",
    "retrieval": "msc_graph.memory.designs.retrieval:Retrieval",
    "select": "msc_graph.memory.designs.select:LLMSelection",
    "oracle": "msc_graph.memory.designs.oracle:Oracle",
    "published": "msc_graph.memory.designs.published:PublishedNotes",
    # baselines (pip install -e ".[baselines]")
    "mem0": "msc_graph.memory.designs.mem0:Mem0Memory",
    "langmem": "msc_graph.memory.designs.langmem:LangMemMemory",
}


@dataclass(frozen=True)
class DesignKeys:
    """What a design declares about its results (``MemoryDesign.embeds``, ``reads_settings``,
    ``parameters``; a plug-in's factory declares them as attributes too, or keys nothing of its own)."""

    embeds: bool = False
    #: The run settings it reads that change its results (the embedding model when it embeds).
    reads: tuple[str, ...] = ()
    #: Its own parameters that change results.
    parameters: dict[str, Any] = field(default_factory=dict)


class DesignError(ValueError):
    """A memory design cannot be loaded; the message names it and the fix."""


def design_factory(name: str) -> Callable[..., Any]:
    """The factory of a built-in design, or of a plug-in named ``package.module:factory``."""
    target = DESIGNS.get(name, name)
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise DesignError(
            f"unknown memory design {name!r}: give --memory one of {', '.join(DESIGNS)}, or package.module:factory"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DesignError(f"memory design {name!r}: cannot import {module_name} ({exc}); is it installed?") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise DesignError(f"memory design {name!r}: {module_name} has no callable {attr!r}")
    return factory


def design_keys(name: str) -> DesignKeys:
    """What the design ``name`` declares: whether it embeds, which settings and parameters key its runs."""
    factory = design_factory(name)
    embeds = bool(getattr(factory, "embeds", False))
    reads = tuple(getattr(factory, "reads_settings", ())) + (("embedding_model",) if embeds else ())
    return DesignKeys(embeds, reads, dict(getattr(factory, "parameters", None) or {}))
