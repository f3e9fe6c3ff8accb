"""The background sender: a bounded queue in the daemon's loop, read by a few delivery tasks.

Sessions only enqueue (``session_started``/``session_ended`` never wait and never raise), so
a receiver that hangs or is gone delays nothing but its own events. An event that cannot
be delivered is dropped with ONE warning line (``session_id`` bound; never the secret, and
of the URL only its scheme, host and port, as its path or query may hold a token).

In a cluster, a node claims each (session, event) in Redis (``SET NX`` with a TTL) before
sending it, so an event is sent once even when two nodes finish the same session (a fenced
node and the survivor that declared it lost). While Redis is away each node decides alone
and sends: delivery is at least once, and the event's id (the ``webhook-id``) is the same
from every node, so a receiver can drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from callfleet.backoff import Backoff, Jitter
from supervisor.config import WebhooksSection
from supervisor.webhooks import events
from supervisor.webhooks.delivery import Delivery, Outcome, Post, http_post
from supervisor.webhooks.events import WebhookEvent

log = structlog.get_logger("supervisor.webhooks")

QUEUE_SIZE = 1000  # events waiting; past that a new one is dropped (a receiver down for long)
SENDERS = 4  # deliveries in flight at once: one slow event does not hold up the others
CLAIM_TTL_S = 7 * 24 * 3600  # how long the cluster remembers that an event was claimed
GRACE_S = 3.0  # at shutdown, how long pending deliveries still get

# claim(key, ttl_s) -> whether this node is the first to claim key (Cluster.claim_once).
Claim = Callable[[str, float], Awaitable[bool]]


def endpoint(url: str) -> str:
    """What logs say of the URL: scheme, host and port only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def claim_key(event: WebhookEvent) -> str:
    return f"cf:webhook:{event.session_id}:{event.type.value}"


class WebhookSender:
    """Signs and POSTs session events to ``settings.url``. ``start`` in the daemon's loop,
    ``await close()`` at shutdown; ``session_started``/``session_ended`` from anywhere in it."""

    def __init__(self, settings: WebhooksSection, key: bytes, *, post: Post | None = None,
                 queue_size: int = QUEUE_SIZE) -> None:
        assert settings.url is not None
        self.endpoint = endpoint(settings.url)
        self.claim: Claim | None = None  # set in cluster mode
        self._settings = settings
        self._key = key
        self._post = post
        self._http: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._in_flight = 0
        self.delivered = 0

    def start(self) -> None:
        post = self._post
        if post is None:
            self._http = aiohttp.ClientSession()
            assert self._settings.url is not None
            post = http_post(self._http, self._settings.url, self._settings.timeout_s)
        policy = Backoff(self._settings.retry_base_s, self._settings.retry_max_s, jitter=Jitter.EQUAL)
        delivery = Delivery(self._key, post, policy, self._settings.max_attempts)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(delivery), name=f"webhooks-{i}") for i in range(SENDERS)]
        log.info("webhooks on", endpoint=self.endpoint, max_attempts=self._settings.max_attempts)

    # -- what sessions call ------------------------------------------------------------------

    def session_started(self, detail: dict[str, Any]) -> None:
        """Enqueue ``session.started`` for a session whose bot has joined (its detail)."""
        self._enqueue(events.started, detail)

    def session_ended(self, detail: dict[str, Any]) -> None:
        """Enqueue ``session.ended`` for a finished session (its detail)."""
        self._enqueue(events.ended, detail)

    def _enqueue(self, build: Callable[[dict[str, Any]], WebhookEvent], detail: dict[str, Any]) -> None:
        sid = detail.get("session_id")
        if self._closing:
            log.warning("webhook dropped: the sender has stopped", session_id=sid, endpoint=self.endpoint)
            return
        try:
            self._queue.put_nowait(build(detail))
        except asyncio.QueueFull:
            log.warning("webhook dropped: the queue is full", session_id=sid, endpoint=self.endpoint,
                        queued=self._queue.qsize())
        except Exception:  # a session's end must never fail for its webhook
            log.exception("webhook not built", session_id=sid)

    # -- the delivery tasks ------------------------------------------------------------------

    async def _run(self, delivery: Delivery) -> None:
        while True:
            event = await self._queue.get()
            self._in_flight += 1
            try:
                await self._send(delivery, event)
            except Exception:
                log.exception("webhook delivery failed", session_id=event.session_id, type=event.type.value)
            finally:
                self._in_flight -= 1
                self._queue.task_done()

    async def _send(self, delivery: Delivery, event: WebhookEvent) -> None:
        bound = log.bind(session_id=event.session_id, type=event.type.value, event_id=event.id,
                         endpoint=self.endpoint)
        if self.claim is not None and not await self.claim(claim_key(event), CLAIM_TTL_S):
            bound.info("webhook left to the node that claimed it first")
            return
        report = await delivery.deliver(event)
        if report.outcome is Outcome.DELIVERED:
            self.delivered += 1
            bound.debug("webhook delivered", attempts=report.attempts)
        elif report.outcome is Outcome.REFUSED:
            bound.warning("webhook dropped: refused by the receiver", attempts=report.attempts, last=report.last)
        else:
            bound.warning("webhook dropped: not delivered", attempts=report.attempts, last=report.last)

    # -- shutdown --------------------------------------------------------------------------------

    async def close(self, grace_s: float = GRACE_S) -> None:
        """Take no more events; give the queued and in-flight ones ``grace_s`` to be
        delivered, then stop (what is left is counted in one warning line)."""
        self._closing = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):  # what is still queued is counted below
                await asyncio.wait_for(self._queue.join(), grace_s)
        left = self._queue.qsize() + self._in_flight
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if left:
            log.warning("webhooks dropped at shutdown: not delivered within the grace period", events=left,
                        grace_s=grace_s, endpoint=self.endpoint)
        if self._http is not None:
            await self._http.close()
