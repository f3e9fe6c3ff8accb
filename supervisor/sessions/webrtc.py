"""A browser's WebRTC call, the session's side: what stands where a room would.

The session has no room. Its start answers only its id; the browser's first SDP offer
(``POST /sessions/{id}/api/offer``) is its join: the worker answers it with its aiortc peer
and runs the bot on it, and the answer goes back to the browser. From then on the browser's
media go straight to the worker; the supervisor relays only later signalling (a
renegotiation naming the peer's ``pc_id``, trickled ICE candidates) to that one worker.

Its one human is the browser: its peer closing is the browser leaving, which ends the
session when the request says the last leave does (after a grace for bot() to return by
itself). A browser's peer lives in one worker process, so a worker lost mid-call ends the
call. The session's actor owns this object; the HTTP views call ``offer`` and
``candidates`` beside the actor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from protocol.messages import Err, ErrCode, IceCandidate, Ok, ParticipantLeft, WebRTCCandidates, WebRTCOffer
from supervisor.config import Config
from supervisor.sessions.actor import End, SessionGone
from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.call_events import HOSTED_LEFT_GRACE_S, CallEvents
from supervisor.sessions.participants import Participants
from supervisor.sessions.state import EndReason
from supervisor.sessions.timers import Timers

BROWSER_ID = "browser"  # the participant the worker reports leaving (worker.webrtc_call)
SIGNAL_TIMEOUT_S = 15.0  # for the worker to answer a renegotiation or take candidates


class SignalRefused(Exception):
    """A browser's offer or candidates the session cannot take: ``status`` is the HTTP
    status the view answers with, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PendingOffer(msgspec.Struct):
    """A first offer on its way to the worker, and where its answer goes."""

    offer: WebRTCOffer
    answer: asyncio.Future[dict[str, Any]]


class WebRTCCall:
    """The browser's call of one session (a ``WebRTCStart``). ``offer`` and ``candidates``
    are the HTTP views'; the rest is the actor's."""

    def __init__(self, session_id: str, config: Callable[[], Config], link: BotLink, participants: Participants,
                 timers: Timers, call: CallEvents, stop: Callable[..., None], log: structlog.stdlib.BoundLogger,
                 *, end_on_last_leave: bool) -> None:
        self.session_id = session_id
        self.end_on_last_leave = end_on_last_leave
        self._config = config  # read at each use: a reload applies to live sessions
        self.link = link
        self.participants = participants
        self.timers = timers
        self.call = call
        self._stop = stop
        self.log = log
        self.created = time.monotonic()
        self._offers: asyncio.Queue[PendingOffer] = asyncio.Queue()
        self.pending: PendingOffer | None = None  # the first offer the worker is answering
        self.pc_id: str | None = None  # the browser's peer, once an offer was answered
        self.ending = False
        self.left = False  # the browser went away: bot() returning is its leaving

    # -- the HTTP views' ---------------------------------------------------------------------

    def ice_servers(self) -> list[dict[str, Any]]:
        """``[webrtc] ice_servers`` as RTCPeerConnection's ``iceServers`` (none by default)."""
        servers: list[dict[str, Any]] = msgspec.to_builtins(self._config().webrtc.ice_servers)
        return [{k: v for k, v in s.items() if v is not None} for s in servers]

    async def offer(self, sdp: str, sdp_type: str, pc_id: str | None, restart_pc: bool) -> dict[str, Any]:
        """The browser's SDP offer; returns the answer ``{sdp, type, pc_id}``. The first is
        the session's join; a later one must name the peer. Raises ``SignalRefused``."""
        if self.ending:
            raise SignalRefused(409, f"session {self.session_id} has finished")
        if self.pc_id is None:
            if self.pending is not None or not self._offers.empty():
                raise SignalRefused(409, f"session {self.session_id} is already answering an offer")
            pending = PendingOffer(WebRTCOffer(id=0, sdp=sdp, sdp_type=sdp_type, ice_servers=self.ice_servers()),
                                   asyncio.get_running_loop().create_future())
            self._offers.put_nowait(pending)
            return await pending.answer
        if pc_id != self.pc_id:
            raise SignalRefused(409, f"session {self.session_id} already has a browser connected (pc_id "
                                     f"{self.pc_id}); one call per session: a new offer must name that pc_id")
        reply = await self._signal(WebRTCOffer(id=self.link.next_id(), sdp=sdp, sdp_type=sdp_type, pc_id=pc_id,
                                               restart_pc=restart_pc))
        answer: dict[str, Any] = reply.result
        return answer

    async def candidates(self, pc_id: str, candidates: list[IceCandidate]) -> None:
        """The browser's trickled ICE candidates for its peer. Raises ``SignalRefused``."""
        if self.ending:
            raise SignalRefused(409, f"session {self.session_id} has finished")
        if self.pc_id is None:
            raise SignalRefused(409, f"session {self.session_id} has answered no offer yet: POST the offer first")
        if pc_id != self.pc_id:
            raise SignalRefused(404, f"peer connection {pc_id!r} is not this session's")
        await self._signal(WebRTCCandidates(id=self.link.next_id(), pc_id=pc_id, candidates=candidates))

    async def _signal(self, msg: WebRTCOffer | WebRTCCandidates) -> Ok:
        worker = self.link.worker
        if worker is None:
            raise SignalRefused(409, f"session {self.session_id} has no worker any more")
        reply = await self.link.pool.request(worker, msg, SIGNAL_TIMEOUT_S)
        if isinstance(reply, Err):
            status = 400 if reply.code == ErrCode.BAD_REQUEST else 404 if reply.code == ErrCode.NOT_JOINED else 502
            raise SignalRefused(status, reply.message)
        return reply

    # -- the actor's -------------------------------------------------------------------------

    async def next_offer(self) -> PendingOffer:
        """The browser's first offer (the join). Raises ``End`` (join failed) when none came
        within ``[webrtc] offer_timeout_s`` of the start."""
        timeout = self._config().webrtc.offer_timeout_s
        try:
            self.pending = await asyncio.wait_for(self._offers.get(),
                                                  max(0.0, self.created + timeout - time.monotonic()))
        except TimeoutError:
            raise End(EndReason.JOIN_FAILED, f"no WebRTC offer came to /sessions/{self.session_id}/api/offer "
                                             f"within {timeout} s") from None
        return self.pending

    def answered(self, answer: dict[str, Any], bot_name: str) -> dict[str, Any]:
        """The worker answered the first offer: the browser gets the answer, and the join's
        data is as a room's join reports it (the bot local, the browser the one participant)."""
        assert self.pending is not None
        self.pc_id = str(answer.get("pc_id") or "")
        pending, self.pending = self.pending, None
        if not pending.answer.done():
            pending.answer.set_result(answer)
        self.participants.bot_joined(bot_name)
        self.log.info("webrtc offer answered", pc_id=self.pc_id)
        browser = {"id": BROWSER_ID, "info": {"isLocal": False, "userName": BROWSER_ID}}
        return {"participants": {"local": {"id": bot_name, "info": {"isLocal": True, "userName": bot_name}},
                                 BROWSER_ID: browser}}

    def refused(self, exc: BaseException) -> None:
        """The worker could not take the pending offer: its sender gets ``exc``."""
        pending, self.pending = self.pending, None
        if pending is not None and not pending.answer.done():
            pending.answer.set_exception(exc)

    def browser_left(self, event: ParticipantLeft) -> None:
        """The browser's peer connection closed. The bot hears it (its transport's
        ``on_client_disconnected``) and has a moment to return from bot() by itself; either
        way the session ends ``participant_left``."""
        self.participants.left(event.participant or {"id": BROWSER_ID})
        if not self.end_on_last_leave:
            self.call.arm_idle()
            return
        self.left = True
        self.timers.arm("browser_left", HOSTED_LEFT_GRACE_S, self._stop, EndReason.PARTICIPANT_LEFT,
                        "the browser left")

    def end(self) -> None:
        """The session is on its way out: whoever still waits on an offer hears so."""
        self.ending = True
        while not self._offers.empty():
            self.pending = self._offers.get_nowait()
            self.refused(SessionGone(f"session {self.session_id} has ended"))
        self.refused(SessionGone(f"session {self.session_id} has ended"))
