from __future__ import annotations

import argparse
from typing import Any

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl, require_str


class Stop(ControlCommand):
    name = "stop"
    help = "end a session: the bot leaves, its room is deleted if callfleet created it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id")

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"id": ns.id}

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        sid = require_str(args, "id")
        if not await daemon.stop_session(sid):
            raise CommandError(f"no live session {sid}")
        return {"stopped": sid}

    def render(self, result: Any) -> str:
        return f"stopping {result['stopped']}"
