#!/usr/bin/env python
"""`python runners/batch.py`: the same as the `msc-batch` command (see `--help`)."""

import sys

from msc_graph.cli.batch import main

if __name__ == "__main__":
    sys.exit(main())
