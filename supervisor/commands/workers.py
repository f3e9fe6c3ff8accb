from __future__ import annotations

from typing import Any

from supervisor.commands.base import ControlCommand, DaemonControl, table


class Workers(ControlCommand):
    name = "workers"
    help = "every worker process: state, pid, session, memory"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        return daemon.workers()

    def render(self, result: Any) -> str:
        rows = [{**r, "worker": r["id"], "session": r["session_id"], "pss": r["pss_mb"]} for r in result]
        return table(rows, ["worker", "pid", "lane", "state", "session", "pss", "uptime_s", "sessions_done"])
