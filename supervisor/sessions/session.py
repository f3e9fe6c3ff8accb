"""A bot session: an actor (``supervisor.sessions.actor``) that owns the session's state.

Nothing else mutates it; the registry only creates actors and routes to them. Its life::

    requested -> assigned -> joining -> joined -> leaving -> ended
                 (or failed from any state, with an end reason)

Its steps: prepare the room (``SessionRoom``), wait for the worker the registry acquired
to boot, join (the bot's class makes the join message), and on the way out leave, give
the worker back or recycle it (the join and the leave are ``Seating``'s), delete the room
if the session created it, and write the record. Slow steps run as steps the actor can
cancel, so a stop, a drain or an ask takes effect at once; events that arrive meanwhile
are handled, in order, when the step is done. Asks that await a worker run beside the
actor, never in it.

With failover on, a worker lost while joined is replaced and the bot rejoins the same room
with a fresh token; the participants are reconciled with what the rejoin reports, and the
session keeps its id and records the gap.

A phone call over a WebSocket (``PhoneStart``) has no room: its side of the session (its
URL, its stream's arrival as the join, the caller hanging up) is ``PhoneCall``
(``supervisor.sessions.phone_call``). A phone's WebSocket cannot be rejoined, so a worker
lost mid-call ends the call.

A browser over Pipecat's SmallWebRTC (``WebRTCStart``) has no room either: its first SDP
offer is the join, and its peer closing is the browser leaving (``WebRTCCall``,
``supervisor.sessions.webrtc``). Its peer lives in one worker: a worker lost ends the call.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable
from typing import Any, NoReturn, TypeVar

import structlog

from callfleet import scrub
from protocol.audio import AudioIn
from protocol.messages import (
    AudioSettings,
    BotFinished,
    DialinReady,
    Err,
    Event,
    ParticipantLeft,
    SendAppMessage,
    SocketBytes,
    SocketClose,
    SocketText,
    TurnFigures,
)
from supervisor.bots import BOT_KINDS, Bot
from supervisor.daily_rest import DailyAPIError
from supervisor.pool import PoolFull, WorkerHandle
from supervisor.pool.lanes import lane_of
from supervisor.sessions.actor import Actor, End, SessionGone, WorkerEvent, WorkerLost, answer_error
from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.call_events import CallEvents
from supervisor.sessions.dialin import DialinCall
from supervisor.sessions.participants import Participants
from supervisor.sessions.phone import PhoneLine
from supervisor.sessions.phone_call import PhoneCall
from supervisor.sessions.record import RecordKeeper
from supervisor.sessions.requests import InvalidStart, PhoneStart, Prepared, StartRequest, WebRTCStart
from supervisor.sessions.room import SessionRoom, TokenRefused
from supervisor.sessions.seating import Seating
from supervisor.sessions.services import Services
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.timers import Timers
from supervisor.sessions.webrtc import WebRTCCall
from supervisor.store import SessionRecord

log = structlog.get_logger("supervisor.sessions")

T = TypeVar("T")


class CommandRefused(Exception):
    """The worker refused a command (the call client's error text)."""


class Session(Actor):
    """One bot session, from its start request to its record: the actor that owns its
    room, its worker (through ``link``), its bot, its participants and timers, and its
    record. Outside the actor, use ``stop``, ``ask`` and the ``on_worker_*`` callbacks;
    ``prepared`` answers the start call, ``finished`` is set once the record is final."""

    def __init__(self, services: Services, request: StartRequest) -> None:
        super().__init__(str(uuid.uuid4()))
        self.s = services
        self.request = request
        self.log = log.bind(session_id=self.id)
        self.stream_token = secrets.token_urlsafe(24)
        self.daily_key = secrets.token_urlsafe(24)  # the bot's key for the supervisor's Daily proxy
        cfg = services.config
        bot_cls = BOT_KINDS.get(request.kind)
        self.audio = AudioSettings(cfg.audio.sample_rate, cfg.audio.channels, cfg.audio.frame_ms,
                                   realtime_slack_ms=bot_cls.realtime_slack_ms if bot_cls else 0)
        self.record = SessionRecord(id=self.id, state=SessionState.REQUESTED, profile=request.profile,
                                    kind=request.kind, requested_at=time.time(),
                                    max_duration_s=request.max_duration_s, extra=request.recorded())
        self.room = SessionRoom(self.id, request.room_request(), cfg, services.rest, services.store,
                                services.room_pool)
        self.participants = Participants()
        self.timers = Timers()
        self.call = CallEvents(self.participants, self.timers, self.stop, end_on_last_leave=request.end_on_last_leave,
                               idle_timeout_s=lambda: self.s.config.sessions.idle_timeout_s)
        self.link = BotLink(self.id, cfg.audio.sample_rate, cfg.audio.channels, cfg.run_dir, services.pool, self.stop,
                            services.frame_dropped)
        self.bot: Bot | None = None
        self.prepared: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        dialin = request.dialin
        self.dialin = None if dialin is None else DialinCall(services.rest, dialin, self.log)
        # The session must be over by then; rooms and tokens outlive it (see SessionRoom).
        p = cfg.pool
        self.ends_by = time.time() + p.start_timeout_s + cfg.sessions.join_timeout_s + request.max_duration_s
        self.keeper = RecordKeeper(self.record, services, self.link, self.participants, self.log)
        self.seating = Seating(self.id, request, services, self.link, self.keeper, self.participants, self.audio,
                               self.daily_key, self.log)
        # A phone call over a WebSocket, and the line its URL opens.
        self.phone_call = PhoneCall(self.id, request, lambda: self.s.config, self.participants, self.timers,
                                    self.call, self.on_worker_event, self.stop, self.log) \
            if isinstance(request, PhoneStart) else None
        self.phone: PhoneLine | None = None if self.phone_call is None else self.phone_call.line
        self.keeper.phone = self.phone
        # A browser's WebRTC call, its offers relayed to the worker.
        self.webrtc = WebRTCCall(self.id, lambda: self.s.config, self.link, self.participants, self.timers, self.call,
                                 self.stop, self.log, end_on_last_leave=request.end_on_last_leave) \
            if isinstance(request, WebRTCStart) else None

    @property
    def worker(self) -> WorkerHandle | None:
        return self.link.worker

    @worker.setter
    def worker(self, handle: WorkerHandle | None) -> None:
        self.link.worker = handle

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"session-{self.id}")

    # -- WorkerListener (called by the pool) -------------------------------------------------

    def on_worker_event(self, event: Event | BotFinished | TurnFigures) -> None:
        if isinstance(event, TurnFigures):
            # Figures, not events: added at once, so the last batch (sent as the bot is
            # stopped, before the worker answers the Leave) lands in the final record.
            self.keeper.figures.add(event)
            if self.s.metrics is not None:
                self.s.metrics.turn_figures(event)
            return
        self.mailbox.put_nowait(WorkerEvent(event))

    def on_worker_audio(self, header: AudioIn, pcm: Any) -> None:
        bot = self.bot
        if bot is not None:
            try:
                bot.on_audio(header, pcm)
            except Exception:
                self.log.exception("bot audio handler failed")

    def on_worker_gone(self, reason: str) -> None:
        self.mailbox.put_nowait(WorkerLost(reason))

    def on_worker_socket(self, msg: SocketText | SocketBytes | SocketClose) -> None:
        if self.phone_call is not None:
            self.phone_call.on_socket(msg)

    # -- the actor ---------------------------------------------------------------------------

    async def _run(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self.id)
        # Scrubbed from logs and errors while the session lives: its own keys and the request's.
        held = scrub.register(self.stream_token, self.daily_key, *self.request.secret_values())
        cancelled = False
        try:
            self._save()
            await self._life()
        except End as end:
            reason, detail = end.reason, end.detail
        except asyncio.CancelledError:
            reason, detail, cancelled = EndReason.DRAINED, "cancelled", True
        except Exception as exc:
            self.log.exception("session crashed")
            reason, detail = EndReason.ERROR, f"{type(exc).__name__}: {exc}"
        try:
            await self._finish(reason, detail)
        finally:
            scrub.forget(held)  # the record is written, scrubbed: nothing of them goes out later
        if cancelled:
            raise asyncio.CancelledError  # whoever cancelled the actor learns it ended

    async def _life(self) -> NoReturn:
        """Prepare, join, then handle the call's events until a stop (raises ``End``)."""
        bot_cls = BOT_KINDS.get(self.request.kind)
        if bot_cls is None:
            raise End(EndReason.ERROR, f"no bot of kind {self.request.kind!r}")
        if self.phone is not None:
            self.prepared.set_result(Prepared(self.id, "", "", self.stream_token, ws_token=self.phone.token))
        elif self.webrtc is not None:
            self.prepared.set_result(Prepared(self.id, "", "", self.stream_token))
        else:
            await self._step(self._prepare_room())
        self._set_state(SessionState.ASSIGNED, assigned_at=time.time())
        self.bot = bot_cls(self.link, self.request.bot_config())
        data = await self._step(self._join())
        self._set_state(SessionState.JOINED, joined_at=time.time())
        if self.s.webhooks is not None:  # enqueued only: the receiver never holds the session up
            self.s.webhooks.session_started(self.describe())
        assert self.record.joined_at is not None and self.record.requested_at is not None
        self.ends_by = self.record.joined_at + self.request.max_duration_s
        if self.s.metrics is not None:
            self.s.metrics.start_latency(self.record.joined_at - self.record.requested_at)
        self.timers.arm("max_duration", self.request.max_duration_s, self.stop, EndReason.MAX_DURATION)
        await self.call.joined(self.bot, data)
        while True:
            for event in self._take_deferred():
                await self._on_event(event)
            msg = await self._receive()
            if isinstance(msg, WorkerEvent):
                await self._on_event(msg.event)
            else:
                await self._step(self._failover(msg.reason))

    # -- steps ---------------------------------------------------------------------------------

    async def _prepare_room(self) -> None:
        try:
            user_token = await self.room.prepare(self.ends_by)
        except DailyAPIError as exc:
            self._refuse_start(exc)
            raise End(EndReason.REST_FAILED, str(exc)) from None
        except TokenRefused as exc:
            self._refuse_start(InvalidStart(str(exc)))
            raise End(EndReason.REST_FAILED, str(exc)) from None
        finally:
            self._record_room()
        assert self.room.url is not None
        if not self.prepared.done():
            self.prepared.set_result(Prepared(self.id, self.room.url, user_token, self.stream_token))

    def _refuse_start(self, exc: Exception) -> None:
        # A start call that stopped waiting (or a session started without one) leaves no
        # unread error behind; one that waits still gets it.
        answer_error(self.prepared, exc)

    def _record_room(self) -> None:
        r = self.record
        r.room_url, r.room_name, r.room_created = self.room.url, self.room.name, self.room.created
        if self.room.sip_endpoint:
            r.extra["sip_endpoint"] = self.room.sip_endpoint
        self._save()

    async def _join(self) -> dict[str, Any]:
        """The bot joins: its room, or the phone's stream once it has started. Raises ``End``."""
        assert self.worker is not None and self.bot is not None
        if self.phone_call is not None:
            return await self.seating.join_phone(self.bot, self.phone_call)
        if self.webrtc is not None:
            return await self.seating.join_webrtc(self.bot, self.webrtc)
        return await self.seating.join_room(self.bot, self.room, self.ends_by)

    async def _failover(self, reason: str) -> None:
        lost_at = time.monotonic()
        self.worker = None
        if not self.s.config.sessions.failover:
            raise End(EndReason.WORKER_CRASHED, reason)
        if self.phone_call is not None:
            raise End(EndReason.WORKER_CRASHED, f"{reason}; a phone call's WebSocket cannot be rejoined: the call ends")
        if self.webrtc is not None:
            raise End(EndReason.WORKER_CRASHED, f"{reason}; a browser's WebRTC peer lived in that worker: the call ends")
        self.log.warning("worker lost; failing over", reason=reason)
        try:
            self.worker = self.s.pool.acquire(self.id, self, lane_of(self.request.kind), failover=True)
        except PoolFull as exc:
            raise End(EndReason.WORKER_CRASHED, f"{reason}; no worker for failover: {exc}") from None
        try:
            data = await self._join()
        except End as exc:
            raise End(EndReason.WORKER_CRASHED, f"{reason}; failover failed: {exc.detail}") from None
        gap_ms = (time.monotonic() - lost_at) * 1000
        self.record.failovers += 1
        self.record.failover_gap_ms = round(self.record.failover_gap_ms + gap_ms, 1)
        self._set_state(SessionState.JOINED)
        if self.s.metrics is not None:
            self.s.metrics.failover(gap_ms / 1000)
        self.log.info("failover complete", gap_ms=round(gap_ms, 1), failovers=self.record.failovers)
        assert self.bot is not None
        await self.call.rejoined(self.bot, data)

    # -- events --------------------------------------------------------------------------------

    async def _on_event(self, event: Event | BotFinished) -> None:
        assert self.bot is not None
        if isinstance(event, BotFinished):
            if event.error is None and self.phone_call is not None and self.phone_call.hung_up:
                self.stop(EndReason.PARTICIPANT_LEFT, "the caller hung up")
            elif event.error is None and self.webrtc is not None and self.webrtc.left:
                self.stop(EndReason.PARTICIPANT_LEFT, "the browser left")
            elif event.error is None:
                self.stop(EndReason.BOT_FINISHED, "bot() returned")
            else:
                self.stop(EndReason.BOT_ERROR, event.error)
            return
        if isinstance(event, ParticipantLeft) and self.phone_call is not None:
            self.phone_call.caller_hung_up(event)
            return
        if isinstance(event, ParticipantLeft) and self.webrtc is not None:
            self.webrtc.browser_left(event)
            return
        if isinstance(event, DialinReady) and self.dialin is not None:
            failed = await self.dialin.put_through(self.record.extra.get("sip_endpoint") or event.sip_endpoint)
            if failed is not None:
                self.stop(EndReason.DIALIN_FAILED, failed)
        await self.call.on_event(self.bot, event, in_call=self.record.state == SessionState.JOINED)

    # -- asks the API makes --------------------------------------------------------------------

    async def send_app_message(self, message: Any, participant_id: str | None) -> Any:
        """Send an app message through the bot (asked of the actor via ``ask``). Raises
        ``CommandRefused`` when the call refuses it."""
        reply = await self.link.command(SendAppMessage(id=self.link.next_id(), message=message,
                                                       participant_id=participant_id))
        if isinstance(reply, Err):
            raise CommandRefused(f"{reply.code}: {reply.message}")
        return reply.result

    def stream_config(self) -> dict[str, Any]:
        """The first message a stream engine receives."""
        return self.request.stream_config(self.id, self.record.room_url, self.audio)

    # -- the end -------------------------------------------------------------------------------

    async def _finish(self, reason: EndReason, detail: str | None) -> None:
        """Leave, give the worker back, close the bot, delete the room, write the record.
        Bounded by the stop's ``cleanup_by``; a second cancellation cuts the waits short
        but the record is still written."""
        self.timers.cancel_all()
        self.record.end_reason = reason.value
        # The API and the store keep one line; the whole of it (a traceback) goes to the log.
        self.record.error = scrub.one_line(detail)
        if detail is not None and "\n" in detail.strip():
            self.log.warning("session error", error=detail)
        self._refuse_start(SessionGone(self.record.error or reason.value))
        self._cancel_asks()
        if self.phone_call is not None:
            self.phone_call.ending = True
        if self.webrtc is not None:
            self.webrtc.end()
        cancelled = await self.seating.leave(self._bounded)
        if self.phone_call is not None:
            _, gone = await self._bounded(self.phone_call.hang_up(reason))
            cancelled = cancelled or gone
            self.record.extra["phone"] = self.phone_call.line.view()
        self.keeper.save_counters()
        self.worker = None
        if self.bot is not None:
            try:
                await self.bot.close()
            except Exception:
                self.log.exception("bot close failed")
        error: str | None = None
        if not cancelled:
            error, cancelled = await self._bounded(self.room.delete())
        if self.room.created:  # not deleted: it stays in the ledger for the next start
            self.record.extra["room_delete_error"] = scrub.one_line(error) or "not confirmed in time; deleted at next start"
        final = SessionState.FAILED if reason.failure else SessionState.ENDED
        self._set_state(final, ended_at=time.time())
        if self.s.webhooks is not None:  # every end of a live session passes here, once
            self.s.webhooks.session_ended(self.describe())
        self._close(final.value)
        if cancelled:
            raise asyncio.CancelledError

    async def _bounded(self, work: Awaitable[T]) -> tuple[T | None, bool]:
        """``work``'s result, or None when the cleanup deadline passed first; and whether
        the actor was cancelled meanwhile."""
        timeout = None if self.cleanup_by is None else max(0.0, self.cleanup_by - time.monotonic())
        try:
            return await asyncio.wait_for(work, timeout), False
        except TimeoutError:
            return None, False
        except asyncio.CancelledError:
            return None, True

    # -- persistence and views -----------------------------------------------------------------

    def _set_state(self, state: SessionState, **stamps: Any) -> None:
        self.keeper.set_state(state, **stamps)

    def _save(self) -> None:
        self.keeper.save()

    def describe(self) -> dict[str, Any]:
        """The session as the API shows it (live counters included)."""
        return self.keeper.describe()
