#!/usr/bin/env python
"""`python runners/report.py`: the same as the `msc-report` command (see `--help`)."""

import sys

from msc_graph.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
