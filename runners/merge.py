#!/usr/bin/env python
"""`python runners/merge.py`: the same as the `msc-merge` command (see `--help`)."""

import sys

from msc_graph.cli.merge import main

if __name__ == "__main__":
    sys.exit(main())
