#!/usr/bin/env python
"""`python runners/chat.py`: the same as the `msc-chat` command (see `--help`)."""

import sys

from msc_graph.cli.chat import main

if __name__ == "__main__":
    sys.exit(main())
