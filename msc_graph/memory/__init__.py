"""Per-user preference memory: Chroma store, embeddings, and the memory nodes."""

from msc_graph.memory.store import MemoryError_, PreferenceMemory, collection_name, make_client, open_memory

__all__ = ["MemoryError_", "PreferenceMemory", "collection_name", "make_client", "open_memory"]
