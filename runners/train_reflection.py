#!/usr/bin/env python
"""`python runners/train_reflection.py`: the same as the `msc-train-reflection` command (see `--help`)."""

import sys

from msc_graph.cli.train_reflection import main

if __name__ == "__main__":
    sys.exit(main())
