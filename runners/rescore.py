#!/usr/bin/env python
"""`python runners/rescore.py`: the same as the `msc-rescore` command (see `--help`)."""

import sys

from msc_graph.cli.rescore import main

if __name__ == "__main__":
    sys.exit(main())
