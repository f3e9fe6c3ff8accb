"""Joining a room, as Daily allows it: the room exists and has not ended or not yet begun,
the token is signed, for this room and in its time window, a private room needs one, a full
room refuses; then the joiner hears who is already there."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.membership import Membership
from sandbox.rooms.participants import Participant, RoomError
from sandbox.store import Store
from sandbox.tokens import TokenError, TokenSigner


class Admission:
    """The ``join`` request: Daily's rules, judged on the store's clock."""

    def __init__(self, store: Store, signer: TokenSigner, members: Membership, endpoint: RoomEndpoint) -> None:
        self.store = store
        self.signer = signer
        self.members = members
        self.endpoint = endpoint

    def join(self, peer: bytes, args: dict[str, Any]) -> dict[str, Any]:
        """Admit the client at ``peer``; returns Daily's join data. Raises ``RoomError``
        with Daily's text when the join is refused."""
        name = str(args.get("room", ""))
        room_rec = self.store.rooms.get(name)
        if room_rec is None:
            raise RoomError("The meeting you're trying to join does not exist.")
        now = self.store.clock()
        if room_rec.expired(now):
            raise RoomError("Meeting has ended")
        nbf = room_rec.properties.get("nbf")
        if nbf and now < nbf:
            raise RoomError("Meeting has not started yet")
        token = args.get("token")
        props: dict[str, Any] = {}
        if token:
            try:
                props = self.signer.properties(token)
            except TokenError as exc:
                raise RoomError(str(exc)) from None
            if props.get("room_name") not in (None, name):
                raise RoomError("Meeting token is not valid for this room")
        elif room_rec.privacy == "private":
            raise RoomError("You are not allowed to join this meeting (private room; a meeting token is required)")
        live = self.members.live(name)
        limit = room_rec.properties.get("max_participants")
        if limit and len(live.participants) >= limit:
            raise RoomError("Meeting is full")
        pid = str(uuid.uuid4())
        p = Participant(
            id=pid,
            room=name,
            peer=peer,
            joined_at=now,
            user_name=str(args.get("user_name") or props.get("user_name") or ""),
            user_id=str(props.get("user_id") or ""),
            owner=bool(props.get("is_owner", False)),
            mic_on=bool(args.get("mic", True)),
        )
        render_rate = args.get("render_all")
        if render_rate:  # subscribed to everyone from the first frame, as Daily's clients are
            p.renderers[("*", "microphone")] = int(render_rate)
        elapsed = props.get("eject_after_elapsed") or room_rec.properties.get("eject_after_elapsed")
        if elapsed:
            p.eject_at = now + elapsed
        if props.get("eject_at_token_exp") and props.get("exp"):
            p.eject_at = min(p.eject_at or float("inf"), float(props["exp"]))
        self.members.admit(live, p)
        # Daily also tells a joiner about everyone already there, one participant-joined
        # each, after its join completes (Pipecat listens to a participant from that event).
        present = [o.view() for o in live.participants.values() if o.id != pid]
        if present:
            asyncio.get_running_loop().call_later(0.01, self._announce_present, p, present)
        if p.owner and room_rec.sip_endpoint:
            # Daily tells the owner the SIP endpoint is ready once it is in the room.
            asyncio.get_running_loop().call_later(0.05, self.endpoint.event, p, "on_dialin_ready", room_rec.sip_endpoint)
        views = {"local": p.view(local=True)}
        views.update({o.id: o.view() for o in live.participants.values() if o.id != pid})
        return {"meetingSession": {"id": live.session_id}, "participants": views}

    def _announce_present(self, p: Participant, present: list[dict[str, Any]]) -> None:
        live = self.members.rooms.get(p.room)
        if live is None or p.id not in live.participants:
            return  # left already
        for view in present:
            if view["id"] in live.participants:
                self.endpoint.event(p, "on_participant_joined", view)
