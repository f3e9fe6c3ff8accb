"""Who is in which live room: admitting and removing participants, and the requests that
change a participant's own state (leave, name, microphone) or, for an owner, the others'."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.store import iso


class Membership:
    """The live rooms by name and their participants (by id, and by peer for clients).

    ``on_empty(room)`` runs when a room's last participant has gone, before it is dropped."""

    def __init__(self, endpoint: RoomEndpoint, on_empty: Callable[[LiveRoom], None]) -> None:
        self.endpoint = endpoint
        self.on_empty = on_empty
        self.rooms: dict[str, LiveRoom] = {}
        self.by_peer: dict[bytes, Participant] = {}

    def live(self, name: str) -> LiveRoom:
        """The live room ``name``, made if nobody is in it yet."""
        return self.rooms.setdefault(name, LiveRoom(name))

    def admit(self, live: LiveRoom, p: Participant) -> None:
        """Put ``p`` in ``live`` and tell everyone else."""
        live.participants[p.id] = p
        if p.peer is not None:
            self.by_peer[p.peer] = p
        live.max_participants = max(live.max_participants, len(live.participants))
        if live.recording is not None:
            live.recording.max_participants = max(live.recording.max_participants, len(live.participants))
        self.endpoint.broadcast(live, "on_participant_joined", p.view(), skip=p.id)
        self.endpoint.counts(live)

    def remove(self, p: Participant, *, notify_self: str | None = None, reason: str = "leftCall") -> None:
        """Take ``p`` out of its room and tell everyone left; ``notify_self`` is the error
        ``p``'s own client leaves with (nothing: it is not told)."""
        live = self.rooms.get(p.room)
        if live is None or live.participants.pop(p.id, None) is None:
            return
        if p.peer is not None:
            self.by_peer.pop(p.peer, None)
            if notify_self:
                self.endpoint.event(p, "_left", notify_self)
        if p.phone is not None and p.dial is not None:
            p.phone.stop()
            stopped = {"sessionId": p.id}
            if p.dialin_call is not None:
                stopped.update(callId=p.dialin_call.call_id, callDomain=p.dialin_call.call_domain)
            self.endpoint.broadcast(live, f"on_{p.dial.value}_stopped", stopped)
        for other in live.participants.values():
            for key in [k for k in other.renderers if k[0] == p.id]:
                del other.renderers[key]
        if live.active_speaker == p.id:
            live.active_speaker = None
        self.endpoint.broadcast(live, "on_participant_left", p.view(), reason)
        self.endpoint.counts(live)
        if not live.participants:
            self.on_empty(live)
            del self.rooms[p.room]

    def eject(self, room_name: str, ids: list[str], reason: str = "ejected") -> list[str]:
        """Remove these participants of ``room_name``; returns the ids that were there."""
        live = self.rooms.get(room_name)
        if live is None:
            return []
        done = []
        for pid in ids:
            p = live.participants.get(pid)
            if p is not None:
                self.remove(p, notify_self=reason)
                done.append(pid)
        return done

    def disconnect(self, room_name: str) -> int:
        """Fault: drop every client connection in a room (``*``: all rooms) without a word.

        The server forgets them at once; each client notices the silence and leaves with
        a connection error, as after a network cut."""
        count = 0
        for live in list(self.rooms.values()):
            if room_name in ("*", live.name):
                for p in [p for p in live.participants.values() if p.peer is not None]:
                    self.remove(p)
                    count += 1
        return count

    def close_room(self, room_name: str, reason: str) -> None:
        """Eject everyone in ``room_name``, telling each ``reason``."""
        live = self.rooms.get(room_name)
        if live is not None:
            self.eject(room_name, list(live.participants), reason)

    # -- what the REST API shows -----------------------------------------------------------

    def presence(self, room: str) -> list[dict[str, Any]]:
        """``GET /rooms/:name/presence``'s entries."""
        live = self.rooms.get(room)
        if live is None:
            return []
        now = time.monotonic()
        return [
            {
                "room": room,
                "id": p.id,
                "userId": p.user_id or None,
                "userName": p.user_name,
                "joinTime": iso(p.joined_at),
                "duration": int(now - p.joined_mono),
            }
            for p in live.participants.values()
        ]

    def inspect(self, room: str) -> list[dict[str, Any]]:
        """The sandbox's own view of a room's participants (``/v1/sandbox/rooms/:name/participants``)."""
        live = self.rooms.get(room)
        if live is None:
            return []
        return [
            {
                "id": p.id,
                "user_name": p.user_name,
                "owner": p.owner,
                "kind": p.dial.value if p.dial is not None else "client",
                "frames_sent": p.frames_sent,
                "frames_received": p.frames_received,
                "renders": sorted(f"{pid}/{source}" for pid, source in p.renderers),
                **(p.phone.inspect() if p.phone else {}),
            }
            for p in live.participants.values()
        ]

    # -- operations ------------------------------------------------------------------------

    def op_leave(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self.remove(p)

    def op_set_user_name(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        p.user_name = str(args.get("user_name", ""))
        self.endpoint.broadcast(live, "on_participant_updated", p.view(), skip=p.id)

    def op_update_mic(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        p.mic_on = bool(args.get("enabled", True))
        self.endpoint.broadcast(live, "on_participant_updated", p.view(), skip=p.id)

    def op_eject(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> list[str]:
        if not p.owner:
            raise RoomError("only meeting owners can eject participants")
        return self.eject(live.name, [str(i) for i in args.get("ids", [])])

    def op_update_remote_participants(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        if not p.owner:
            raise RoomError("only meeting owners can update remote participants")
        for pid, update in (args.get("remote_participants") or {}).items():
            target = live.participants.get(pid)
            if target is None:
                raise RoomError(f"no participant {pid} in the call")
            mic = ((update or {}).get("inputsEnabled") or {}).get("microphone")
            if mic is not None:
                target.mic_on = bool(mic)
            self.endpoint.broadcast(live, "on_participant_updated", target.view())
