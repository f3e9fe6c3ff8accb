"""Deleting the rooms the supervisor created, without losing one.

Every room the supervisor creates is in the store's ledger from before its create call
until Daily confirms it is gone (``Store.remember_room``). Deletes run concurrently: the
REST client's rate limiter, not a loop here, keeps them within Daily's limits. A delete
that cannot finish by the deadline stays in the ledger, and the next start deletes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import structlog

from supervisor.daily_rest import DailyAPIError, DailyREST
from supervisor.store import Store

log = structlog.get_logger("supervisor.rooms")


async def delete_room(rest: DailyREST, store: Store, name: str) -> str | None:
    """Delete one room and strike it from the ledger; returns the error text if it stays."""
    try:
        await rest.delete_room_by_name(name)
    except DailyAPIError as exc:
        log.error("could not delete a room; it stays recorded for the next start", room=name, error=str(exc))
        return str(exc)
    store.forget_room(name)
    return None


async def delete_rooms(rest: DailyREST, store: Store, names: Iterable[str], deadline: float | None = None) -> list[str]:
    """Delete ``names`` concurrently until ``deadline`` (``time.monotonic()``); returns
    the rooms still recorded (not deleted, or not confirmed in time)."""
    tasks = {asyncio.ensure_future(delete_room(rest, store, name)): name for name in dict.fromkeys(names)}
    if not tasks:
        return []
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        log.warning("room deletes cut off at the deadline; they stay recorded for the next start",
                    rooms=len(pending))
    return [tasks[t] for t in pending] + [tasks[t] for t in done if t.result() is not None]


async def delete_leftover_rooms(rest: DailyREST, store: Store, deadline: float | None = None) -> int:
    """On start-up: rooms a previous run created and did not get to delete. Returns how many."""
    names = store.owned_rooms()
    left = await delete_rooms(rest, store, names, deadline)
    return len(names) - len(left)
