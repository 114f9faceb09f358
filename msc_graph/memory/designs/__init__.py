"""One module per memory design; ``msc_graph.memory.registry`` lists them by name."""
