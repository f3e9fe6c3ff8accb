"""The daemon as the HTTP layer sees it (``supervisor.http.keys.HttpDaemon``), for tests
that build the app over a stand-in.

A test's stand-in subclasses ``BareDaemon`` and sets the parts its requests reach. What it
leaves unset is declared, so the stand-in has the daemon's whole shape for the type
checker, but absent: a request that reaches it fails the test with an AttributeError
naming it. ``NoSessions`` is a registry in which every lookup finds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from supervisor.config import Config, parse
from supervisor.daemon_state import DaemonState
from supervisor.http.keys import ClusterNode, DailyAPI, MetricsPage, PoolHealth, SessionRegistry
from supervisor.profiles import Profiles
from supervisor.profiles import parse as parse_profiles
from supervisor.sessions.requests import StartRequest
from supervisor.sessions.session import Session
from supervisor.sessions.state import SessionState


class BareDaemon:
    """A running single node with the default config, no profiles and no parts."""

    state = DaemonState.RUNNING
    config: Config = parse("")
    environ: Mapping[str, str] = {}
    profiles: Profiles = parse_profiles("")
    cluster: ClusterNode | None = None
    registry: SessionRegistry
    rest: DailyAPI
    http_session: aiohttp.ClientSession
    pool: PoolHealth
    metrics: MetricsPage

    def status(self) -> dict[str, Any]:
        raise AssertionError("this stand-in daemon has no status")

    async def stop_session(self, session_id: str) -> bool:
        raise AssertionError("this stand-in daemon stops no session")

    def workers(self) -> list[dict[str, Any]]:
        raise AssertionError("this stand-in daemon has no workers")


class NoSessions:
    """A registry with no session, live or finished; it takes no start."""

    node_id = "this-node"

    def start(self, request: StartRequest) -> Session:
        raise AssertionError("this stand-in registry starts no session")

    def get(self, session_id: str) -> Session | None:
        return None

    def by_daily_key(self, key: str) -> Session | None:
        return None

    def describe(self, session_id: str) -> dict[str, Any] | None:
        return None

    def list(self, state: SessionState | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return []
