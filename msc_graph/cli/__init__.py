"""The commands: one module each (``msc-batch`` = ``runners/batch.py``, and so on)."""
