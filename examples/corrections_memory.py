"""A memory design from outside msc_graph: the agent keeps, word for word, what the user asked it to
change, and sees those requests again before every reply. No model calls, no embeddings.

    PYTHONPATH=examples python runners/batch.py --experiment_type agent_with_memory \
        --memory corrections_memory:CorrectionsMemory ...
"""

from __future__ import annotations

from msc_graph.memory.designs.base import Learned, MemoryDesign, Recall

#: Words that mark a user message as a request about how the agent should answer.
CUES = ("please", "as i asked", "i prefer", "always", "don't", "do not", "instead")
#: How many requests the agent keeps (the latest).
KEEP = 20


class CorrectionsMemory(MemoryDesign):
    name = "corrections"
    learns = True  # memory carries across sessions: a user's sessions run in order
    recalls = True  # recall() runs before every agent turn
    parameters = {"cues": CUES, "keep": KEEP}  # what changes its results: they key its runs' records

    def __init__(self, settings):
        super().__init__(settings)
        self.kept: dict = {}  # user id -> notes; the runner restores it from the records on resume

    async def start(self, session, given):
        """The memory the session starts with (``given``: the session's input, e.g. in Studio)."""
        if given is not None:
            return list(given)
        return list(self.kept.get(session.user_id, []))

    async def recall(self, session, memory, messages):
        """Before each agent turn: what to show the agent on the latest user message."""
        if not memory:
            return Recall(shown=[])
        asked = "\n".join(f"- {note['preference']}" for note in memory)
        return Recall(shown=memory, text=f"\n\n[Earlier, this person asked you:\n{asked}]")

    async def learn(self, session, memory, messages):
        """After the session: the memory to keep (notes in the shape the built-in designs use)."""
        after = list(memory)
        for m in messages:
            text = m["content"]
            if m["role"] != "user" or not any(cue in text.lower() for cue in CUES):
                continue
            if text not in [note["preference"] for note in after]:
                after.append({"preference": text, "evidence": f"session {session.session_index + 1}", "how_to_satisfy": ""})
        after = after[-KEEP:]  # the latest requests
        if session.from_store:
            self.kept[session.user_id] = after
        return Learned(after, info={"new": [n["preference"] for n in after if n not in memory]})

    async def restore(self, user_id, memory):
        """On resume: the memory of the user's last finished session, from the results file."""
        self.kept[user_id] = list(memory or [])
