from __future__ import annotations

import argparse
from typing import Any

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl


class Scale(ControlCommand):
    name = "scale"
    help = "change min_idle / max_workers now (until the next reload)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--min-idle", type=int, default=None)
        parser.add_argument("--max-workers", type=int, default=None)

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"min_idle": ns.min_idle, "max_workers": ns.max_workers}

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        min_idle, max_workers = args.get("min_idle"), args.get("max_workers")
        if min_idle is None and max_workers is None:
            raise CommandError("give --min-idle and/or --max-workers")
        for key, value in (("min_idle", min_idle), ("max_workers", max_workers)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "max_workers" else 0)):
                raise CommandError(f"{key}: expected int >= {1 if key == 'max_workers' else 0}")
        return daemon.scale(min_idle, max_workers)

    def render(self, result: Any) -> str:
        return f"pool now min_idle={result['min_idle']} max_workers={result['max_workers']}"
