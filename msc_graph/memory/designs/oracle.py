"""``oracle``: the agent is told the user's true preferences (an upper bound, nothing learned)."""

from __future__ import annotations

from typing import Any

from msc_graph.memory.designs.base import MemoryDesign, SessionInfo
from msc_graph.prompts import AGENT_ORACLE_BLOCK, format_numbered


class Oracle(MemoryDesign):
    name = "oracle"

    def system_block(self, memory: Any, session: SessionInfo) -> str:
        return AGENT_ORACLE_BLOCK.format(preferences=format_numbered(list(session.preferences)))
