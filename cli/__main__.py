"""``python -m cli ARGS``: the ``callfleet`` console script, run by a given interpreter (the
tests, the bench and the supervisor's own sandbox child start it this way)."""

import sys

from cli.main import main

sys.exit(main())
