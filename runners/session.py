#!/usr/bin/env python
"""`python runners/session.py`: the same as the `msc-session` command (see `--help`)."""

import sys

from msc_graph.cli.session import main

if __name__ == "__main__":
    sys.exit(main())
