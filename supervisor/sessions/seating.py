"""The bot's seat on its session's worker: the join and the leave, as the session asks them.

The join waits for the worker to boot, claims it, sends the join message the bot's class
makes (for a room, for a phone call's WebSocket, which is relayed to the worker from the
moment the join is on its way, or for a browser's WebRTC offer, which the worker answers)
and reads a refusal as the session's end reason. The leave,
asked only of a worker that was asked to join, gives the worker back to the pool, or
retires it when the leave was not answered.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.messages import AudioSettings, Err, ErrCode, Leave, Ok, WebRTCOffer
from supervisor.bots import Bot
from supervisor.bots.base import Hosting, Seat
from supervisor.daily_rest import DailyAPIError
from supervisor.pool import WorkerGone, WorkerState
from supervisor.sessions.actor import End
from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.participants import Participants
from supervisor.sessions.phone_call import PhoneCall
from supervisor.sessions.record import RecordKeeper
from supervisor.sessions.requests import StartRequest
from supervisor.sessions.room import BOT_NAME, SessionRoom
from supervisor.sessions.services import Services
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.webrtc import SignalRefused, WebRTCCall

LEAVE_TIMEOUT_S = 5.0


class OfferRefused(Exception):
    """The worker's aiortc could not take a browser's offer; the worker started nothing."""

# The session's bound on a wait of its way out: the result (None when cut off), and whether
# the actor was cancelled meanwhile.
Bounded = Callable[[Awaitable[Ok | Err]], Awaitable[tuple[Ok | Err | None, bool]]]


class Seating:
    """Joins and leaves one session's bot on the session's current worker (``link``); used
    only by the session's actor."""

    def __init__(self, session_id: str, request: StartRequest, services: Services, link: BotLink,
                 keeper: RecordKeeper, participants: Participants, audio: AudioSettings, daily_key: str,
                 log: Any) -> None:
        self.session_id = session_id
        self.request = request
        self.s = services
        self.link = link
        self.keeper = keeper
        self.participants = participants
        self.audio = audio
        self.daily_key = daily_key
        self.log = log
        self.join_sent = False  # the worker was asked to join: it must be asked to leave

    async def join_room(self, bot: Bot, room: SessionRoom, ends_by: float) -> dict[str, Any]:
        """The bot joins the session's room with a fresh token (good until ``ends_by``).
        Returns the join's data. Raises ``End``."""
        assert room.url is not None
        try:
            token = await room.bot_token(ends_by)
        except DailyAPIError as exc:
            raise End(EndReason.REST_FAILED, str(exc)) from None
        data = await self._join(bot, room_url=room.url, token=token)
        local = (data.get("participants") or {}).get("local") or {}
        self.participants.bot_joined(local.get("id"), (local.get("info") or {}).get("userName"))
        return data

    async def join_phone(self, bot: Bot, phone: PhoneCall) -> dict[str, Any]:
        """The phone's stream arrives on its URL and starts, then the worker runs the bot
        over it, the call relayed from the first message on. Returns the join's data, as a
        room's join reports it. Raises ``End``."""
        call = await phone.stream_started()
        self.keeper.record.extra["phone"] = phone.line.view()
        await self._join(bot, phone=phone)
        return phone.answered(call, BOT_NAME)

    async def join_webrtc(self, bot: Bot, call: WebRTCCall) -> dict[str, Any]:
        """The browser's first offer arrives, the worker answers it and runs the bot on its
        peer; the answer goes back to the browser. An offer the worker's aiortc refuses is
        the browser's 400, and the session waits for another. Returns the join's data, as a
        room's join reports it. Raises ``End``."""
        while True:
            pending = await call.next_offer()
            try:
                reply = await self._join(bot, webrtc=pending.offer)
            except OfferRefused as exc:
                call.refused(SignalRefused(400, str(exc)))
                continue
            except End as exc:
                call.refused(SignalRefused(502 if exc.reason is EndReason.WORKER_CRASHED else 500,
                                           f"the session could not start: {exc.detail or exc.reason.value}"))
                raise
            return call.answered(reply, BOT_NAME)

    def hosting(self) -> Hosting:
        """What a bot the worker hosts is handed for this session: its ``runner_args.body``,
        the Daily proxy and this session's key for it, its profile's env and its keys."""
        url = self.s.daily_proxy_url
        obs = self.s.config.observability
        return Hosting(body=self.request.runner_body(self.daily_key, url), api_url=url, api_key=self.daily_key,
                       env=self.s.bot_env(self.request.profile), provider_keys=self.request.secrets.provider_keys,
                       otlp_endpoint=obs.otlp_endpoint or "", otlp_service_name=obs.service_name)

    async def _join(self, bot: Bot, *, room_url: str = "", token: str = "",
                    phone: PhoneCall | None = None, webrtc: WebRTCOffer | None = None) -> dict[str, Any]:
        """Seat the bot on the worker: in the room at ``room_url`` with ``token``, on
        ``phone``'s call, or on the peer answering ``webrtc``. Returns the join's data.
        Raises ``End`` when the worker does not start, is lost, or the join is refused (the
        bot's error or its return included); ``OfferRefused`` when the worker could not take
        the offer (nothing was started)."""
        worker = self.link.worker
        assert worker is not None
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.s.config.pool.start_timeout_s)
        except (TimeoutError, WorkerGone) as exc:
            raise End(EndReason.NO_WORKER, f"worker did not start: {exc}") from None
        self.s.pool.mark_busy(worker)
        self.keeper.set_state(SessionState.JOINING)
        timeout = self.s.config.sessions.join_timeout_s
        seat_id = self.link.next_id()
        seat = Seat(id=seat_id, session_id=self.session_id, room_url=room_url, token=token, user_name=BOT_NAME,
                    audio=self.audio, timeout_s=timeout,
                    websocket=None if phone is None else phone.websocket(seat_id), webrtc=webrtc)
        join = bot.join_message(seat, self.hosting)
        self.join_sent = True
        if phone is None:
            reply = await self.s.pool.request(worker, join, timeout + 5)
        else:  # the call goes to the worker from the moment its RunBot is on its way
            relay = functools.partial(phone.line.start_relay, seat_id, lambda m: self.s.pool.relay(worker, m))
            reply = await self.s.pool.request(worker, join, timeout + 5, on_sent=relay)
        if isinstance(reply, Err):
            if worker.state == WorkerState.DEAD:
                raise End(EndReason.WORKER_CRASHED, f"worker lost while joining: {reply.message}")
            if reply.code == ErrCode.BOT_ERROR:  # a hosted bot raised before joining: its traceback
                raise End(EndReason.BOT_ERROR, reply.message)
            if reply.code == ErrCode.BOT_FINISHED:
                raise End(EndReason.BOT_FINISHED, reply.message)
            if reply.code == ErrCode.BAD_REQUEST and webrtc is not None:
                raise OfferRefused(reply.message)
            raise End(EndReason.JOIN_FAILED, f"{reply.code}: {reply.message}")
        data: dict[str, Any] = reply.result or {}
        return data

    async def leave(self, bounded: Bounded) -> bool:
        """The bot leaves if it was asked to join, and the worker goes back to the pool (or
        is retired when the leave failed). Returns whether the actor was cancelled meanwhile."""
        worker = self.link.worker
        if worker is None or worker.state == WorkerState.DEAD:
            return False
        cancelled = False
        calls_done: int | None = worker.calls_done
        if self.join_sent:
            self.keeper.set_state(SessionState.LEAVING)
            leave = Leave(id=self.link.next_id(), timeout_s=LEAVE_TIMEOUT_S)
            reply, cancelled = await bounded(self.s.pool.request(worker, leave, LEAVE_TIMEOUT_S + 3))
            if not isinstance(reply, Ok):
                self.log.warning("leave failed; retiring the worker",
                                 error=reply.message if isinstance(reply, Err) else "cut off")
                calls_done = None
            else:
                calls_done = int((reply.result or {}).get("calls_done", worker.calls_done))
        self.keeper.save_counters()
        self.s.pool.release(worker, calls_done)
        return cancelled
