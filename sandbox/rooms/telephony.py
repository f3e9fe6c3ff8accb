"""Phones in a room: dial-in calls connected by ``pinlessCallUpdate``, dial-out started by an
owner, DTMF both ways, SIP transfer and refer, and hanging up. Each phone is a participant
that lives in this process (``sandbox.rooms.phone``), speaking a tone and hearing the room."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.membership import Membership
from sandbox.rooms.participants import Dial, LiveRoom, Participant, RoomError
from sandbox.rooms.phone import RATE, Phone
from sandbox.rooms.routing import AudioRouter
from sandbox.store import DialinCall, Room, Store

DTMF_TONES = "0123456789*#ABCDabcd"
DTMF_GAP_S = 0.05  # between the keys of one press
DIALOUT_ANSWER_S = 0.1  # from dial-out connected to answered


class Telephony:
    """Adds phones to rooms and answers the telephony requests."""

    def __init__(self, store: Store, members: Membership, endpoint: RoomEndpoint, router: AudioRouter) -> None:
        self.store = store
        self.members = members
        self.endpoint = endpoint
        self.router = router

    def add_phone(self, live: LiveRoom, number: str, *, dial: Dial, user_name: str | None = None,
                  tone_hz: float = 440.0, before_join: Callable[[Participant], None] | None = None) -> Participant:
        """A phone at ``number`` joins ``live`` and starts speaking; ``before_join`` runs
        first (Daily's events about the call come before the phone's participant-joined)."""
        pid = str(uuid.uuid4())
        participant = Participant(id=pid, room=live.name, peer=None, joined_at=self.store.clock(),
                                  user_name=user_name or number, user_id=number, dial=dial)
        participant.renderers[("*", "microphone")] = RATE

        def speak(pcm: bytes, seq: int) -> None:
            self.router.route(participant, "microphone", pcm, RATE, 1, seq)

        participant.phone = Phone(pid, number, speak=speak, tone_hz=tone_hz)
        if before_join is not None:
            before_join(participant)
        self.members.admit(live, participant)
        participant.phone.start()
        return participant

    def connect_dialin(self, call: DialinCall, room: Room) -> Participant:
        """``pinlessCallUpdate`` named this call: the phone joins the room."""
        live = self.members.live(room.name)

        def connected(phone: Participant) -> None:
            # Daily's order: dialin-connected, then the phone's participant-joined.
            phone.dialin_call = call
            call.room_name, call.participant_id = room.name, phone.id
            data = {"sessionId": phone.id, "callId": call.call_id, "callDomain": call.call_domain,
                    "sipFrom": call.from_number, "sipTo": call.to_number}
            self.endpoint.broadcast(live, "on_dialin_connected", data)

        return self.add_phone(live, call.from_number, dial=Dial.DIALIN, tone_hz=call.tone_hz, before_join=connected)

    def phone(self, room: str, participant_id: str) -> Participant | None:
        """The phone participant ``participant_id`` of ``room``, if there is one."""
        live = self.members.rooms.get(room)
        target = live.participants.get(participant_id) if live else None
        return target if target is not None and target.phone is not None else None

    def hang_up(self, room: str, participant_id: str) -> bool:
        """The phone hangs up; False if there is no such phone."""
        target = self.phone(room, participant_id)
        if target is None:
            return False
        self.members.remove(target)
        return True

    def press_keys(self, room: str, phone_id: str, tones: str, *, after_s: float = 0.0) -> None:
        """The phone presses ``tones``, one key every ``DTMF_GAP_S`` from ``after_s`` on."""
        loop = asyncio.get_running_loop()
        for i, digit in enumerate(tones):
            loop.call_later(after_s + DTMF_GAP_S * i, self._press, room, phone_id, digit)

    def _press(self, room: str, phone_id: str, digit: str) -> None:
        # A phone presses a key: everyone else gets dtmf-event.
        live = self.members.rooms.get(room)
        if live is None or phone_id not in live.participants:
            return
        self.endpoint.broadcast(live, "on_dtmf_event", {"tone": digit, "sessionId": phone_id, "participantId": phone_id}, skip=phone_id)

    # -- operations ------------------------------------------------------------------------

    def op_start_dialout(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> dict[str, Any]:
        room_rec = self.store.rooms.get(live.name)
        if room_rec is None or not room_rec.properties.get("enable_dialout"):
            raise RoomError("Dial-out is not enabled for this room")
        if not p.owner:
            raise RoomError("only meeting owners can start a dial-out")
        settings = args.get("settings") or {}
        number = settings.get("phoneNumber") or settings.get("sipUri")
        if not number:
            raise RoomError("dial-out settings need a phoneNumber or a sipUri")
        sent: dict[str, Any] = {}

        def connected(phone: Participant) -> None:
            # Daily's order: dialout-connected, the phone joins, then dialout-answered.
            sent.update(sessionId=phone.id, userId=settings.get("userId") or phone.id)
            self.endpoint.broadcast(live, "on_dialout_connected", dict(sent))

        phone = self.add_phone(live, str(number), dial=Dial.DIALOUT, user_name=settings.get("displayName"), before_join=connected)
        asyncio.get_running_loop().call_later(DIALOUT_ANSWER_S, self._answer_dialout, live.name, phone.id, sent)
        return {"sessionId": phone.id}

    def _answer_dialout(self, room: str, phone_id: str, data: dict[str, Any]) -> None:
        live = self.members.rooms.get(room)
        if live is not None and phone_id in live.participants:
            self.endpoint.broadcast(live, "on_dialout_answered", data, skip=phone_id)

    def op_stop_dialout(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        target = live.participants.get(str(args.get("participant_id")))
        if target is None or target.dial is not Dial.DIALOUT:
            raise RoomError("no dial-out session with that participant id")
        self.members.remove(target)

    def op_send_dtmf(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        """Tones sent to a phone, which presses the same keys back (DTMF both ways)."""
        settings = args.get("settings") or {}
        target = live.participants.get(str(settings.get("sessionId") or settings.get("participantId")))
        if target is None or target.phone is None:
            raise RoomError("send_dtmf needs the sessionId of a dial-out or dial-in call")
        tones = str(settings.get("tones", ""))
        if not tones or any(t not in DTMF_TONES for t in tones):
            raise RoomError("tones must be DTMF digits (0-9, *, #, A-D)")
        target.phone.dtmf_heard += tones
        self.press_keys(live.name, target.id, tones, after_s=DTMF_GAP_S)

    def op_sip_call_transfer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self._transfer(live, args, "sip_call_transfer")

    def op_sip_refer(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self._transfer(live, args, "sip_refer")

    def _transfer(self, live: LiveRoom, args: dict[str, Any], what: str) -> None:
        settings = args.get("settings") or {}
        target = live.participants.get(str(settings.get("sessionId")))
        if target is None or target.phone is None:
            raise RoomError(f"{what} needs the sessionId of a phone participant")
        if not (settings.get("toEndPoint") or settings.get("sipUri") or settings.get("to")):
            raise RoomError(f"{what} needs a toEndPoint")
        self.members.remove(target)  # the call now continues elsewhere
