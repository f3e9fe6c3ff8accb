from __future__ import annotations

from typing import Any

from supervisor.commands.base import ControlCommand, DaemonControl


class Drain(ControlCommand):
    name = "drain"
    help = "stop taking sessions, end the running ones, then exit (same as SIGTERM)"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        daemon.request_drain()
        return {"draining": True, "sessions": len(daemon.registry.live)}

    def render(self, result: Any) -> str:
        return f"draining: {result['sessions']} live session(s) will end, then the daemon exits"
