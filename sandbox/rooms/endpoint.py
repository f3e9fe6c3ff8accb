"""The room server's end of the room protocol (``sandbox.wire``): one ZeroMQ ROUTER on
loopback that every participant's DEALER connects to, and how messages leave it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from callfleet.loop_socket import LoopSocket
from sandbox.rooms.participants import LiveRoom, Participant
from sandbox.wire import Ev, encoder


class RoomEndpoint:
    """The ROUTER, bound at once to a free port (``address``); read once ``start``ed."""

    def __init__(self, host: str) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 10000)
        self.sock.setsockopt(zmq.RCVHWM, 10000)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        port = self.sock.bind_to_random_port(f"tcp://{host}")
        self.address = f"tcp://{host}:{port}"
        self.io: LoopSocket | None = None

    def start(self, on_parts: Callable[[list[Any]], None]) -> None:
        """Hand every message that arrives, as its frames, to ``on_parts`` (on the loop)."""
        self.io = LoopSocket(self.sock)
        self.io.on_parts(on_parts)

    def close(self) -> None:
        if self.io is not None:
            self.io.close()
        else:
            self.sock.close(0)
        self.ctx.term()

    def send_parts(self, parts: list[Any]) -> bool:
        """Send without blocking; False when the message was dropped."""
        # A full queue or a peer that vanished drops the message: the sweeper removes dead
        # participants. After close(), sends are refused rather than raised.
        if self.io is None or self.io.closed:
            return False
        return self.io.try_send(parts, copy=False)

    def send(self, p: Participant, msg: Any) -> None:
        """Send one wire message to ``p`` (nothing for a phone: it lives in this process)."""
        if p.peer is None:
            return
        self.send_parts([p.peer, encoder.encode(msg)])

    def event(self, p: Participant, callback: str, *args: Any) -> None:
        """Tell ``p``'s client to call ``callback(*args)`` on its event handler."""
        self.send(p, Ev(callback, list(args)))

    def broadcast(self, room: LiveRoom, callback: str, *args: Any, skip: str | None = None) -> None:
        """``event`` to everyone in ``room`` but the participant ``skip``."""
        for other in room.participants.values():
            if other.id != skip:
                self.event(other, callback, *args)

    def counts(self, room: LiveRoom) -> None:
        """Tell everyone in ``room`` how many are there."""
        self.broadcast(room, "on_participant_counts_updated", {"present": len(room.participants), "hidden": 0})
