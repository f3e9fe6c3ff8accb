from __future__ import annotations

from typing import Any

from supervisor.commands.base import ControlCommand, DaemonControl


class Reload(ControlCommand):
    name = "reload"
    help = "re-read the config file and converge the pool (same as SIGHUP)"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        return await daemon.reload()

    def render(self, result: Any) -> str:
        lines = [f"reloaded: pool min_idle={result['min_idle']} max_workers={result['max_workers']}"]
        if result.get("needs_restart"):
            lines.append("changed but applied only on restart: " + ", ".join(result["needs_restart"]))
        return "\n".join(lines)
