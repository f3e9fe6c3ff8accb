"""``python -m worker.bot_check BACKEND SPEC...``: import Pipecat (over the hosted ``daily``
module for BACKEND) and each bot spec in this fresh process, and print one JSON line per
spec, ``{"spec", "ok", "error"}`` (``spec`` null: Pipecat itself failed). The supervisor
runs it at start-up and on reload to refuse a profile whose bot does not import."""

from __future__ import annotations

import json
import sys

import worker.privileges  # noqa: F401  first: the check runs with the workers' privileges, as they do
from worker.bot_loader import check
from worker.pipecat_preload import prepare


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    backend = args[0] if args else "sandbox"
    try:
        prepare(backend)
    except Exception as exc:
        print(json.dumps({"spec": None, "ok": False, "error": f"pipecat: {type(exc).__name__}: {exc}"}))
        return 1
    failed = False
    for result in check(args[1:]):
        print(json.dumps(result))
        failed = failed or not result["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
