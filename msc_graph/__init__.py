"""msc_graph: the MultiSessionCollab benchmark as LangGraph graphs."""

__version__ = "0.1.0"
