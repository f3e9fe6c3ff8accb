from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl, require_str, table
from supervisor.sessions.state import SessionState


def _iso(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


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
        return daemon.registry.list(state, limit)

    def render(self, result: Any) -> str:
        rows = [{**r, "session": r["session_id"], "pid": r["worker_pid"], "people": len(r["participants"])}
                for r in result]
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
        lines = [f"{k:<16}{_iso(v) if k.endswith('_at') else v}" for k, v in result.items() if k != "participants"]
        lines.append("participants:")
        lines += [f"  {p['id']}  {p['name'] or '-'}{'  (bot)' if p['is_bot'] else ''}" for p in result["participants"]]
        return "\n".join(lines)
