"""The node's connection to Redis, built to be lost: nothing that goes through it raises.

``Link.run(op, default)`` runs one Redis operation and answers ``default`` when Redis is
unreachable; the first failure marks the link down and logs ONE line, a background task
then reconnects with back-off, logs one line when Redis answers again and runs the
registered "on reconnect" callbacks (each node re-publishes its lease, sessions and room
ledger there, since Redis may have restarted empty).

The one exception is a Redis that answers but refuses this node at start-up (a wrong
password, a TLS certificate that does not verify): that is the operator's to fix, so
``start`` raises ``ConfigError`` instead of waiting. The URL may hold a password
(``redis://:PASSWORD@host``, ``rediss://`` for TLS): only ``redacted(url)`` is ever logged.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError

from callfleet.backoff import Backoff, Jitter
from supervisor.config import ConfigError

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
        self.url_for_logs = redacted(url)
        try:
            # No client-side retries: a failure must reach us at once so the link goes down.
            self.client: Redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                                retry=Retry(NoBackoff(), 0), health_check_interval=0)
        except ValueError as exc:  # redis-py's message names the problem, never the password
            raise ConfigError(f"cluster.redis_url: {self.url_for_logs}: {exc}") from None
        self.refused: str | None = None  # why Redis refused this node at start-up (see start)
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
        """Start the monitor and wait up to ``first_try_s`` for the first connection (a node
        whose Redis is down at start-up serves its own sessions meanwhile). Raises
        ``ConfigError`` naming ``cluster.redis_url`` when Redis answered and refused this
        node's credentials or TLS, so a wrong password stops start-up."""
        self._task = asyncio.get_running_loop().create_task(self._monitor(), name="redis-link")
        deadline = time.monotonic() + first_try_s
        while not self.available and self.refused is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.refused is not None:
            await self.stop()
            raise ConfigError(f"cluster.redis_url: {self.url_for_logs} refused this node: {self.refused}")

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
                    refusal = _refusal(exc, bool(self.client.connection_pool.connection_kwargs.get("password")))
                    if refusal is not None and not self._ever_connected:
                        self.refused = refusal  # start() raises it
                    if attempt == 0 and refusal is not None:
                        log.error("redis refused this node; fix the password or TLS settings in cluster.redis_url",
                                  redis=self.url_for_logs, error=refusal)
                    elif attempt == 0 and not self._ever_connected:
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


def redacted(url: str) -> str:
    """``url`` without its credentials, for logs and errors: ``rediss://:secret@host:6379/0``
    reads ``rediss://:***@host:6379/0``, a ``password=`` in the query ``password=***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a redis URL that does not parse>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hostport}"
    query = urlencode([(k, "***" if "password" in k.lower() else v) for k, v in parse_qsl(parts.query)],
                      safe="*/")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _refusal(exc: BaseException, has_password: bool) -> str | None:
    """Why Redis refused this node, when ``exc`` says it did (not merely: it is not there)."""
    if isinstance(exc, AuthenticationError):
        if not has_password:
            return "it requires a password and the URL has none"
        return f"authentication failed ({exc})"  # WRONGPASS: redis-py's text has no password
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"its TLS certificate does not verify ({cause.verify_message})"
    return None
