#!/usr/bin/env python
"""`python runners/serve.py`: the same as the `msc-serve` command (see `--help`)."""

import sys

from msc_graph.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
