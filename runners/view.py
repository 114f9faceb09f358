#!/usr/bin/env python
"""`python runners/view.py`: the same as the `msc-view` command (see `--help`)."""

import sys

from msc_graph.cli.view import main

if __name__ == "__main__":
    sys.exit(main())
