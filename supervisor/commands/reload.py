from __future__ import annotations

from typing import Any

import structlog

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl

log = structlog.get_logger("supervisor.reload")


class Reload(ControlCommand):
    name = "reload"
    help = "re-read the config file and converge the pool (same as SIGHUP)"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        """Reload, or log one ``reload refused`` line and raise ``CommandError``: SIGHUP runs
        this too, so a refusal reads the same in the daemon's log whoever asked."""
        try:
            return await daemon.reload()
        except CommandError as exc:
            log.error("reload refused", error=str(exc))
            raise
        except Exception as exc:
            refused = f"{type(exc).__name__}: {exc}"
            log.error("reload refused", error=refused)
            raise CommandError(refused) from None

    def render(self, result: Any) -> str:
        lines = [f"reloaded: pool min_idle={result['min_idle']} max_workers={result['max_workers']}"]
        if result.get("needs_restart"):
            lines.append("changed but applied only on restart: " + ", ".join(result["needs_restart"]))
        return "\n".join(lines)
