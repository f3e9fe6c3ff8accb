from __future__ import annotations

import json
from typing import Any

from supervisor.commands.base import ControlCommand, DaemonControl


class Events(ControlCommand):
    """Follows the PUB feed; the daemon side only says where the feed is."""

    name = "events"
    help = "follow session and worker state changes as they happen"

    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        return {"endpoint": daemon.events_endpoint}

    def render(self, result: Any) -> str:
        kind, data = result
        return f"{kind:<8} " + json.dumps(data, separators=(",", ":"))
