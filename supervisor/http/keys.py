"""Typed application keys (no globals), and what the HTTP layer may use of the daemon.

``HttpDaemon`` is everything a view, a middleware or the app factory may reach through
``app[DAEMON]``, and no more; the daemon satisfies it, and so does every stand-in daemon a
test builds the app over. Its parts are typed by what the HTTP layer calls on them
(``SessionRegistry``, ``DailyAPI``, ``ClusterNode``, ``PoolHealth``, ``MetricsPage``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from supervisor.config import Config
from supervisor.daemon_state import DaemonState
from supervisor.profiles import Profiles
from supervisor.session_logs import SessionLogs
from supervisor.sessions.requests import StartRequest
from supervisor.sessions.session import Session
from supervisor.sessions.state import SessionState


class SessionRegistry(Protocol):
    """The live sessions (``supervisor.sessions.registry.Registry``)."""

    @property
    def node_id(self) -> str:
        """The node every session view names: ``[cluster] node_id``, or the host's name."""
        ...

    def start(self, request: StartRequest) -> Session: ...

    def get(self, session_id: str) -> Session | None: ...

    def by_daily_key(self, key: str) -> Session | None: ...

    def describe(self, session_id: str) -> dict[str, Any] | None: ...

    def list(self, state: SessionState | None = None, limit: int = 100) -> list[dict[str, Any]]: ...


class DailyAPI(Protocol):
    """Daily's REST API as the bots' proxy calls it (``supervisor.daily_rest.DailyREST``)."""

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      idempotent: bool | None = None) -> Any: ...


class Node(Protocol):
    """Another node as this one reaches it (``supervisor.cluster.NodeInfo``)."""

    @property
    def node_id(self) -> str: ...

    @property
    def advertise_url(self) -> str: ...


class ClusterNode(Protocol):
    """This node's membership of a cluster (``supervisor.cluster.Cluster``)."""

    @property
    def node_id(self) -> str: ...

    @property
    def directory_whole(self) -> bool: ...

    async def owner_of(self, session_id: str) -> Node | None: ...

    async def view_of(self, session_id: str) -> dict[str, Any] | None: ...

    async def node(self, node_id: str) -> Node | None: ...

    async def all_sessions(self, state: str | None, limit: int) -> list[dict[str, Any]]: ...

    async def nodes_with_capacity(self) -> Sequence[Node]: ...

    async def claim_once(self, key: str, ttl_s: float) -> bool: ...


class PoolHealth(Protocol):
    """What ``/healthz`` and ``/readyz`` read of the worker pool (``supervisor.pool.Pool``)."""

    def boot_failing(self) -> bool: ...

    def capacity(self) -> int: ...

    def warming(self) -> list[str]: ...


class MetricsPage(Protocol):
    """The Prometheus page (``supervisor.metrics.Metrics``)."""

    def render(self) -> bytes: ...


class HttpDaemon(Protocol):
    """The daemon (``supervisor.daemon.Daemon``) as the HTTP layer may use it."""

    @property
    def state(self) -> DaemonState: ...

    @property
    def config(self) -> Config: ...

    @property
    def environ(self) -> Mapping[str, str]: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def registry(self) -> SessionRegistry: ...

    @property
    def rest(self) -> DailyAPI: ...

    @property
    def cluster(self) -> ClusterNode | None: ...

    @property
    def http_session(self) -> aiohttp.ClientSession: ...

    @property
    def pool(self) -> PoolHealth: ...

    @property
    def metrics(self) -> MetricsPage: ...

    @property
    def session_logs(self) -> SessionLogs: ...

    def status(self) -> dict[str, Any]:
        """The daemon at a glance (what ``ctl status`` shows), as plain JSON values."""
        ...

    async def stop_session(self, session_id: str) -> bool:
        """End a live session here; False when it is not live here."""
        ...

    def workers(self) -> list[dict[str, Any]]:
        """Every worker process here as ``ctl workers`` shows it (the dashboard's ``/workers``)."""
        ...


DAEMON: web.AppKey[HttpDaemon] = web.AppKey("daemon")
