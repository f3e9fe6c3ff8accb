"""What every session needs, shared: configuration, the pool, Daily's REST client, the
store, the event feed, metrics, the room pool and (in cluster mode) the cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.config import Config
from supervisor.daily_rest import DailyREST
from supervisor.pool import Pool
from supervisor.rooms.pool import RoomPool
from supervisor.store import Store


class Services:
    """What every session needs, shared."""

    def __init__(self, config: Config, pool: Pool, rest: DailyREST, store: Store,
                 publish: Callable[[str, dict[str, Any]], None], metrics: Any = None,
                 room_pool: RoomPool | None = None) -> None:
        self.room_pool = room_pool
        self.config = config
        self.pool = pool
        self.rest = rest
        self.store = store
        self.publish = publish
        self.metrics = metrics
        # A hosted bot's environment for a session of a profile: its secrets and env (the daemon's).
        self.bot_env: Callable[[str], dict[str, str]] = lambda profile: {}

    daily_proxy_url = ""  # where hosted bots reach Daily's REST API: the supervisor's /daily/v1
    cluster: Any = None  # supervisor.cluster.Cluster in cluster mode: every state change goes to its directory
    webhooks: Any = None  # supervisor.webhooks.WebhookSender with [webhooks] url: told when a session starts and ends

    def frame_dropped(self) -> None:
        if self.metrics is not None:
            self.metrics.frame_dropped()
