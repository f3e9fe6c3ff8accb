#!/usr/bin/env python3
"""The bare ZeroMQ ROUTER forwarding floor; the measurement lives in ``bench.floor``
(``callfleet bench`` reports the same figure as ``forwarding_floor_us_per_frame``).

    .venv/bin/python scripts/forwarding_floor.py [--peers 20] [--seconds 6]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from bench.floor import main  # noqa: E402 - after the path is set

if __name__ == "__main__":
    sys.exit(main())
