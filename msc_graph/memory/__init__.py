"""Memory: designs (what an agent remembers and how it uses it) over per-user Chroma stores.

- ``registry``: the designs a run can name; ``designs/``: one module per design.
- ``store`` (notes per user in Chroma), ``access`` (the one way to reach a run's store),
  ``store_process`` (embedded Chroma in a process of its own for the batch runner), ``lock``,
  ``embeddings``, ``notes`` (notes as prompt text).

Nothing here imports the graphs: the graph's memory nodes (``msc_graph.graphs.memory``) call the
designs.
"""
