"""The node's connection to Redis, built to be lost: nothing that goes through it raises.

``Link.run(op, default)`` runs one Redis operation and answers ``default`` when Redis is
unreachable; the first failure marks the link down and logs ONE line, a background task
then reconnects with back-off, logs one line when Redis answers again and runs the
registered "on reconnect" callbacks (each node re-publishes its lease, sessions and room
ledger there, since Redis may have restarted empty).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from callfleet.backoff import Backoff, Jitter

log = structlog.get_logger("supervisor.cluster")

T = TypeVar("T")
Op = Callable[[Redis], Awaitable[T]]

# What "Redis is not there" looks like: refused, reset, timed out, or a server still loading.
UNAVAILABLE = (RedisError, OSError, TimeoutError)


class Link:
    """One Redis client plus the knowledge of whether Redis answers.

    ``connected_since`` is the monotonic time of the last (re)connection, None while down:
    the lease reads it so that no node judges another lost right after an outage.
    """

    def __init__(self, url: str, *, timeout_s: float = 2.0, backoff_max_s: float = 2.0) -> None:
        # No client-side retries: a failure must reach us at once so the link goes down.
        self.client: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.url_for_logs = _without_password(url)
        self.available = False
        self.connected_since: float | None = None
        self._backoff = Backoff(0.1, max(0.1, backoff_max_s), jitter=Jitter.EQUAL)
        self._on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._down = asyncio.Event()
        self._down.set()  # not connected yet: the monitor connects
        self._ever_connected = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def on_reconnect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every (re)connection, the first included."""
        self._on_reconnect.append(callback)

    async def start(self, first_try_s: float = 2.0) -> None:
        """Start the monitor and wait up to ``first_try_s`` for the first connection; never
        raises (a node whose Redis is down at start-up serves its own sessions meanwhile)."""
        self._task = asyncio.get_running_loop().create_task(self._monitor(), name="redis-link")
        deadline = time.monotonic() + first_try_s
        while not self.available and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.client.aclose()
        except UNAVAILABLE:
            pass

    async def run(self, op: Op[T], default: T) -> T:
        """``await op(client)``; ``default`` while Redis is down or when this call finds it
        gone (the link then goes down and reconnects in the background)."""
        if not self.available:
            return default
        try:
            return await op(self.client)
        except UNAVAILABLE as exc:
            self.mark_down(exc)
            return default

    def mark_down(self, exc: BaseException) -> None:
        """Redis stopped answering: log once, then reconnect in the background."""
        if not self.available:
            return
        self.available = False
        self.connected_since = None
        self._down.set()
        if not self._closing:
            log.warning("redis unavailable; serving local sessions only until it returns", redis=self.url_for_logs,
                        error=f"{type(exc).__name__}: {exc}")

    async def _monitor(self) -> None:
        while True:
            await self._down.wait()
            attempt = 0
            # Pooled connections to a Redis that went away are dead: start afresh.
            try:
                await self.client.connection_pool.disconnect()
            except UNAVAILABLE:
                pass
            while True:
                try:
                    await self.client.ping()
                    break
                except UNAVAILABLE as exc:
                    if attempt == 0 and not self._ever_connected:
                        log.warning("redis unavailable; serving local sessions only until it answers",
                                    redis=self.url_for_logs, error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(self._backoff.delay(min(attempt, 20)))
                    attempt += 1
            self._down.clear()
            self.available = True
            self.connected_since = time.monotonic()
            log.info("redis back" if self._ever_connected else "redis connected", redis=self.url_for_logs)
            self._ever_connected = True
            for callback in self._on_reconnect:
                try:
                    await callback()
                except UNAVAILABLE as exc:
                    self.mark_down(exc)
                    break
                except Exception:
                    log.exception("re-publishing to redis failed")


def _without_password(url: str) -> str:
    """``redis://:secret@host:6379/0`` as ``redis://host:6379/0``: never log a credential."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.rpartition('@')[2]}"
