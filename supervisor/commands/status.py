from __future__ import annotations

from typing import Any

from supervisor.commands.base import ControlCommand, DaemonControl


class Status(ControlCommand):
    name = "status"
    help = "the daemon at a glance: sessions and workers by state, where it listens"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        return daemon.status()

    def render(self, result: Any) -> str:
        lines = [
            f"state      {result['state']}",
            f"uptime     {result['uptime_s']:.0f} s",
            f"http       {result['http_url']}",
            f"daily      {result['daily_mode']} ({result['daily_api_url']})",
            f"pool       min_idle={result['pool']['min_idle']} max_workers={result['pool']['max_workers']}  idle: "
            + ", ".join(f"{lane} {n['idle']}/{n['min_idle']}" for lane, n in result["pool"]["lanes"].items()),
            "workers    " + (", ".join(f"{k}={v}" for k, v in sorted(result["workers"].items())) or "none"),
            "sessions   " + (", ".join(f"{k}={v}" for k, v in sorted(result["sessions"].items())) or "none"),
            f"loop       worst stall {result['loop_stall_ms_max']:.1f} ms since start "
            f"(its own work at most {result['loop_busy_ms_max']:.1f} ms)",
        ]
        sandbox = result.get("sandbox")
        if isinstance(sandbox, str):  # "external": one this daemon did not start
            lines.append(f"sandbox    {sandbox} (not started by this supervisor)")
        elif sandbox is not None:
            lines.append(f"sandbox    {sandbox['state']}, {sandbox['restarts']} restart(s)"
                         + (f", last exit: {sandbox['last_exit']}" if sandbox["last_exit"] else ""))
        return "\n".join(lines)
