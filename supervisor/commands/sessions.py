from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl, require_str, table
from supervisor.commands.turn_lines import SHOWN, figure_lines
from supervisor.sessions.state import SessionState


def _iso(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _people(view: dict[str, Any]) -> int:
    """The people in a session: its participants other than the bot."""
    return sum(1 for p in view["participants"] if not p.get("is_bot"))


# Shown by ``_how_it_ended`` (one line, labelled by whether the end was a failure) or as a list.
_SHOWN_APART = frozenset({"participants", "end_detail", "error"}) | SHOWN  # turn figures: figure_lines


def _how_it_ended(view: dict[str, Any]) -> str | None:
    """``error  DETAIL`` for a failure, ``ended  DETAIL`` for an ordinary end, None while
    the session lives (or for an end with nothing to say)."""
    if view.get("error"):
        return f"{'error':<16}{view['error']}"
    if view.get("end_detail"):
        return f"{'ended':<16}{view['end_detail']}"
    return None


class Sessions(ControlCommand):
    name = "sessions"
    help = "live sessions and recent history"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state", default=None, help="only sessions in this state")
        parser.add_argument("--limit", type=int, default=50)

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"state": ns.state, "limit": ns.limit}

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        limit = args.get("limit", 50)
        if not isinstance(limit, int) or limit < 1:
            raise CommandError("limit must be a positive integer")
        name = args.get("state")
        try:
            state = None if name is None else SessionState(name)
        except ValueError:
            raise CommandError(f"unknown state {name!r} (known: {', '.join(SessionState)})") from None
        return await daemon.list_sessions(state, limit)  # what GET /sessions lists, a cluster's included

    def render(self, result: Any) -> str:
        rows = [{**r, "session": r["session_id"], "pid": r["worker_pid"], "people": _people(r)} for r in result]
        return table(rows, ["session", "state", "profile", "pid", "people", "end_reason"])


class Session(ControlCommand):
    name = "session"
    help = "one session in detail"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id")

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"id": ns.id}

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        sid = require_str(args, "id")
        found = daemon.registry.describe(sid)
        if found is None:
            raise CommandError(f"no session {sid}")
        return found

    def render(self, result: Any) -> str:
        lines = [f"{k:<16}{_iso(v) if k.endswith('_at') else v}" for k, v in result.items() if k not in _SHOWN_APART]
        how = _how_it_ended(result)
        if how is not None:
            lines.append(how)
        lines += figure_lines(result)
        lines.append("participants:")
        lines += [f"  {p['id']}  {p['name'] or '-'}{'  (bot)' if p['is_bot'] else ''}" for p in result["participants"]]
        return "\n".join(lines)
