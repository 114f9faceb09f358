#!/usr/bin/env python
"""`python runners/export_reflections.py`: the same as the `msc-export-reflections` command (see `--help`)."""

import sys

from msc_graph.cli.export_reflections import main

if __name__ == "__main__":
    sys.exit(main())
