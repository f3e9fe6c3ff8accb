"""``ctl logs ID [--follow] [--tail N]``: a session's log, its structlog JSON lines in order.

The daemon answers one request with the lines after a given seq and whether the session is
still live; ``--follow`` asks again every ``FOLLOW_POLL_S`` for the lines after the last one
printed, until the session has ended and its last lines are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl, require_str

FOLLOW_POLL_S = 0.5


class Logs(ControlCommand):
    name = "logs"
    help = "print a session's log (every line its worker and bot logged); --follow until it ends"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id")
        parser.add_argument("--follow", "-f", action="store_true", help="print new lines until the session ends")
        parser.add_argument("--tail", type=_line_count, default=None, metavar="N", help="only the last N lines")

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"id": ns.id, "tail": ns.tail, "after": -1}

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        sid = require_str(args, "id")
        tail, after = args.get("tail"), args.get("after", -1)
        if tail is not None and (not isinstance(tail, int) or tail < 1):
            raise CommandError("tail: expected a number of lines of 1 or more")
        if not isinstance(after, int):
            raise CommandError("after: expected a line number")
        if daemon.registry.describe(sid) is None:
            raise CommandError(f"no session {sid}")
        live = sid in daemon.registry.live  # before the read: a session not live has all its lines kept
        lines = daemon.session_logs.read(sid, after=after, tail=tail)
        return {"lines": [line for _, line in lines], "last": max([after, *(seq for seq, _ in lines)]), "live": live}

    def render(self, result: Any) -> str:
        return "\n".join(result["lines"])


def _line_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of lines of 1 or more, got {text!r}")
    return int(text)


def print_log(result: dict[str, Any], args: dict[str, Any], follow: bool,
              ask: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """Print the first reply's lines, then (``follow``) the new ones until the session ends;
    0, or 1 when the daemon stops answering. ``ask`` sends the command again and returns the
    daemon's reply. A closed stdout (``| head``) is cli.main's to answer, as for every command."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a follow, as tail -f's does
        _print(result["lines"])
        while follow and result["live"]:
            time.sleep(FOLLOW_POLL_S)
            try:
                reply = ask({**args, "tail": None, "after": result["last"]})
            except ConnectionError as exc:
                print(f"callfleet ctl logs: {exc}", file=sys.stderr)
                return 1
            if not reply.get("ok"):
                print(f"callfleet ctl logs: {reply.get('error')}", file=sys.stderr)
                return 1
            result = reply["result"]
            _print(result["lines"])
    return 0


def _print(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
