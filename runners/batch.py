#!/usr/bin/env python
"""Run the MultiSessionCollab benchmark. See ``python runners/batch.py --help``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msc_graph.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
