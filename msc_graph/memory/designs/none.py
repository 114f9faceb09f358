"""``none``: the agent remembers nothing between sessions (the published no-memory setting)."""

from __future__ import annotations

from msc_graph.memory.designs.base import MemoryDesign


class NoMemory(MemoryDesign):
    name = "none"
