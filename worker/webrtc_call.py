"""A browser's WebRTC peer in the worker: Pipecat's ``SmallWebRTCConnection``, answered here.

The browser's media go straight to this process's aiortc peer; the supervisor only relays
the signalling (``RunBot.webrtc``, ``WebRTCOffer``, ``WebRTCCandidates``). One peer per
worker, as one call per process: a later offer must name the peer's ``pc_id`` (Pipecat's
renegotiation, or ``restart_pc`` for a fresh peer connection under the same id, as its
development runner does).

aiortc, PyAV and Pipecat's SmallWebRTC are imported on the first WebRTC session only, so the
forkserver's preload and every Daily or phone session stay as fast as they were.

When the peer connection closes or fails (the browser went away), the session hears it as
its one participant leaving (``ParticipantLeft``), as a phone hanging up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from protocol.messages import Err, ErrCode, IceCandidate, Ok, ParticipantLeft, WebRTCCandidates, WebRTCOffer

log = structlog.get_logger("worker.webrtc")

BROWSER_ID = "browser"  # the participant the session counts: the one peer of its call


class OfferRefused(Exception):
    """aiortc could not take the offer (its SDP does not parse, or it offers nothing it can
    answer): the browser's fault, a 400."""


class WebRTCPeer:
    """The worker's one SmallWebRTC peer; ``emit`` sends the supervisor an event."""

    def __init__(self, emit: Callable[[msgspec.Struct], None]) -> None:
        self.emit = emit
        self.connection: Any = None  # pipecat's SmallWebRTCConnection, once an offer was answered
        self._left = False

    async def open(self, offer: WebRTCOffer) -> Any:
        """Answer the first offer with a new peer connection; returns it (the bot's
        ``runner_args.webrtc_connection``). Raises ``OfferRefused``."""
        from pipecat.transports.smallwebrtc.connection import IceServer, SmallWebRTCConnection

        servers = [IceServer(**server) for server in offer.ice_servers]
        connection = SmallWebRTCConnection(ice_servers=servers or None)
        try:
            await connection.initialize(sdp=offer.sdp, type=offer.sdp_type)
        except Exception as exc:  # aiortc raises ValueError and friends for an SDP it cannot take
            await connection.disconnect()
            raise OfferRefused(f"the offer's SDP was refused: {type(exc).__name__}: {exc}") from None
        self._left = False
        connection.add_event_handler("closed", self._gone)
        connection.add_event_handler("failed", self._gone)
        self.connection = connection
        return connection

    def answer(self) -> dict[str, Any]:
        """The SDP answer of the peer, as Pipecat's runner returns it: ``{sdp, type, pc_id}``."""
        answer: dict[str, Any] = self.connection.get_answer()
        return answer

    async def renegotiate(self, offer: WebRTCOffer) -> Ok | Err:
        """A later offer for the peer: renegotiated, or the peer connection restarted."""
        connection = self.connection
        if connection is None or offer.pc_id != connection.pc_id:
            return Err(offer.id, ErrCode.NOT_JOINED, f"no peer connection {offer.pc_id!r} here")
        try:
            await connection.renegotiate(sdp=offer.sdp, type=offer.sdp_type, restart_pc=offer.restart_pc)
        except Exception as exc:
            return Err(offer.id, ErrCode.BAD_REQUEST, f"the offer's SDP was refused: {type(exc).__name__}: {exc}")
        return Ok(offer.id, self.answer())

    async def add_candidates(self, msg: WebRTCCandidates) -> Ok | Err:
        """The browser's trickled ICE candidates, for the peer named ``pc_id``."""
        connection = self.connection
        if connection is None or msg.pc_id != connection.pc_id:
            return Err(msg.id, ErrCode.NOT_JOINED, f"no peer connection {msg.pc_id!r} here")
        try:
            for given in msg.candidates:
                await connection.add_ice_candidate(_candidate(given))
        except Exception as exc:
            return Err(msg.id, ErrCode.BAD_REQUEST, f"ICE candidate refused: {type(exc).__name__}: {exc}")
        return Ok(msg.id, {"status": "success"})

    async def _gone(self, _connection: Any) -> None:
        if not self._left:
            self._left = True
            log.info("the browser's peer connection ended")
            self.emit(ParticipantLeft(participant={"id": BROWSER_ID}, reason="closed"))

    async def close(self) -> None:
        """The session is over: tell the browser (Pipecat's peer-left message) and close."""
        connection, self.connection = self.connection, None
        if connection is not None:
            self._left = True  # the session's own doing: not the browser leaving
            await connection.disconnect()


def _candidate(given: IceCandidate) -> Any:
    """aiortc's candidate for one of Pipecat's patch entries (None: end of candidates)."""
    if not given.candidate:
        return None
    from aiortc.sdp import candidate_from_sdp

    text = given.candidate.removeprefix("candidate:")
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = given.sdp_mid
    candidate.sdpMLineIndex = given.sdp_mline_index
    return candidate
