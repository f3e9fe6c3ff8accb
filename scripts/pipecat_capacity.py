#!/usr/bin/env python3
"""The largest N callfleet and Pipecat's runner each hold with a pipecat profile; the
ladder lives in ``bench.capacity``.

    .venv/bin/python scripts/pipecat_capacity.py [--profile pipecat_echo] [--ladder 10,15,20,25,30,40]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from bench.capacity import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    sys.exit(main())
