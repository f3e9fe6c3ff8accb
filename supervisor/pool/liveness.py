"""A worker's liveness as the supervisor sees it: the handshake that admits it, and the
pings that show it still answers. Silence is judged by ``reconcile`` (a missed Hello or
missed pings kill the worker), not here."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import zlib
from collections.abc import Callable, Mapping

import structlog

from protocol import PROTOCOL_VERSION
from protocol.messages import Hello, Ping, Welcome
from supervisor.config import PoolSection
from supervisor.pool.reconcile import WorkerState
from supervisor.pool.router import WorkerRouter
from supervisor.pool.workers import WorkerHandle

log = structlog.get_logger("supervisor.pool")


def welcome(handle: WorkerHandle, hello: Hello, settings: PoolSection, router: WorkerRouter) -> bool:
    """Answer a worker's Hello: a Reject when it speaks another protocol version, else a
    Welcome with the ping settings and its own ``sessions_per_worker`` (with jitter). True
    when the worker was welcomed: it is booted, idle unless already promised, and ready."""
    if hello.protocol_version != PROTOCOL_VERSION:
        router.reject(handle.identity, f"protocol {hello.protocol_version}, supervisor speaks {PROTOCOL_VERSION}")
        return False
    handle.session_limit = jittered(settings.sessions_per_worker)
    answer = Welcome(ping_interval_s=settings.ping_interval_s, ping_timeout_s=settings.ping_timeout_s,
                     sessions_per_worker=handle.session_limit)
    if not router.tell(handle, answer):
        log.warning("could not welcome a worker; its handshake will time out", worker_id=handle.id)
        return False
    handle.booted = True
    handle.hello_at = time.monotonic()
    handle.pid = hello.pid
    if handle.state == WorkerState.BOOTING:
        handle.state = WorkerState.IDLE
    if not handle.ready.done():
        handle.ready.set_result(None)
    log.info("worker ready", worker_id=handle.id, pid=hello.pid,
             boot_ms=round((handle.hello_at - handle.started_at) * 1000, 1))
    return True


PING_SLOTS = 16  # an interval's pings are spread over this many instants


async def ping_forever(workers: Mapping[str, WorkerHandle], router: WorkerRouter,
                       interval_s: Callable[[], float]) -> None:
    """Ping every welcomed worker once each ``interval_s()`` (read each time: a reload may
    change it), each at its own fixed phase of the interval (``ping_slot``): pinged all at
    once, every worker woke and answered in the same instant, a burst of work on the
    machine's cores once a second while every session's audio waits behind it."""
    seq = itertools.count(1)
    slot = 0
    while True:
        await asyncio.sleep(interval_s() / PING_SLOTS)
        ping = Ping(seq=next(seq), sent_at=time.time())
        for handle in list(workers.values()):
            if handle.booted and handle.state != WorkerState.DEAD and ping_slot(handle.id) == slot:
                # Never waits: a worker whose queue is full misses this ping, and missed
                # pings are judged by reconcile.
                router.tell(handle, ping)
        slot = (slot + 1) % PING_SLOTS


def ping_slot(worker_id: str) -> int:
    """The worker's phase in the ping interval, fixed for its life, so it is pinged exactly
    once per interval however many workers come and go."""
    return zlib.crc32(worker_id.encode()) % PING_SLOTS


def jittered(limit: int) -> int:
    """``sessions_per_worker`` plus up to 10 % so workers started together do not all
    recycle at once (gunicorn's max_requests_jitter)."""
    if limit <= 1:
        return limit
    return limit + random.randint(0, max(1, limit // 10))
