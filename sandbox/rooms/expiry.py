"""The room server's sweeper: it drops participants whose client went silent, and ejects at
the times Daily ejects (the room's ``exp`` with ``eject_at_room_exp``, the token's ``exp``
with ``eject_at_token_exp``, ``eject_after_elapsed``)."""

from __future__ import annotations

import asyncio
import time

import structlog

from sandbox.rooms.membership import Membership
from sandbox.store import Store
from sandbox.wire import HEARTBEAT_TIMEOUT_S

log = structlog.get_logger("sandbox.rooms")

SWEEP_S = 0.25


def sweep(store: Store, members: Membership) -> None:
    """One pass: expiry on the store's (wall) clock, silence on the monotonic one."""
    now, mono = store.clock(), time.monotonic()
    for live in list(members.rooms.values()):
        room_rec = store.rooms.get(live.name)
        if room_rec is not None and room_rec.expired(now) and room_rec.properties.get("eject_at_room_exp"):
            members.close_room(live.name, "Meeting has ended (room expired)")
            continue
        for p in list(live.participants.values()):
            if p.peer is not None and mono - p.last_beat > HEARTBEAT_TIMEOUT_S:
                log.info("participant timed out", room=live.name, participant=p.id)
                members.remove(p)
            elif p.eject_at is not None and now >= p.eject_at:
                members.remove(p, notify_self="ejected (meeting token time is up)")


async def sweep_forever(store: Store, members: Membership) -> None:
    """``sweep`` every ``SWEEP_S`` until cancelled."""
    while True:
        await asyncio.sleep(SWEEP_S)
        sweep(store, members)
