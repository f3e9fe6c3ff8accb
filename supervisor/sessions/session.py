"""A bot session: an actor (``supervisor.sessions.actor``) that owns the session's state.

Nothing else mutates it; the registry only creates actors and routes to them. Its life::

    requested -> assigned -> joining -> joined -> leaving -> ended
                 (or failed from any state, with an end reason)

Its steps: prepare the room (``SessionRoom``), wait for the worker the registry acquired
to boot, join (the bot's class makes the join message), and on the way out leave, give
the worker back or recycle it, delete the room if the session created it, and write the
record. Slow steps run as steps the actor can cancel, so a stop, a drain or an ask takes
effect at once; events that arrive meanwhile are handled, in order, when the step is done.
Asks that await a worker run beside the actor, never in it.

With failover on, a worker lost while joined is replaced and the bot rejoins the same room
with a fresh token; the participants are reconciled with what the rejoin reports, and the
session keeps its id and records the gap.

A phone call over a WebSocket (``PhoneStart``) has no room: its start answers a one-time
WebSocket URL (``supervisor.sessions.phone``), its join is the provider's stream arriving
there and the bot's transport reading it, its one human is the caller, and the call ends
the session when it hangs up. A phone's WebSocket cannot be rejoined, so a worker lost
mid-call ends the call.
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
    CallStateUpdated,
    DialinReady,
    Err,
    ErrCode,
    Event,
    Leave,
    Ok,
    ParticipantLeft,
    SendAppMessage,
    SocketBytes,
    SocketClose,
    SocketText,
    WebSocketCall,
)
from supervisor.bots import BOT_KINDS, Bot
from supervisor.bots.base import Hosting, Seat
from supervisor.daily_rest import DailyAPIError
from supervisor.pool import PoolFull, WorkerGone, WorkerHandle, WorkerState
from supervisor.sessions.actor import Actor, End, SessionGone, WorkerEvent, WorkerLost, answer_error
from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.call_events import HOSTED_LEFT_GRACE_S, CallEvents
from supervisor.sessions.dialin import DialinCall
from supervisor.sessions.participants import Participants
from supervisor.sessions.phone import CloseCode, ClosedBy, PhoneLine
from supervisor.sessions.phone_handshake import HandshakeRefused
from supervisor.sessions.record import RecordKeeper
from supervisor.sessions.requests import InvalidStart, PhoneStart, Prepared, StartRequest
from supervisor.sessions.room import BOT_NAME, SessionRoom, TokenRefused
from supervisor.sessions.services import Services
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.timers import Timers
from supervisor.store import SessionRecord

log = structlog.get_logger("supervisor.sessions")

T = TypeVar("T")

LEAVE_TIMEOUT_S = 5.0


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
        self._join_sent = False  # the worker was asked to join: it must be asked to leave
        # The session must be over by then; rooms and tokens outlive it (see SessionRoom).
        p = cfg.pool
        self.ends_by = time.time() + p.start_timeout_s + cfg.sessions.join_timeout_s + request.max_duration_s
        self.keeper = RecordKeeper(self.record, services, self.link, self.participants, self.log)
        self._ending = False
        self._hung_up = False  # a phone call's caller hung up: bot() returning is their leaving
        # A phone call over a WebSocket: the line its URL opens.
        self.phone = PhoneLine(self.id, request, cfg.telephony, self._phone_closed) \
            if isinstance(request, PhoneStart) else None
        self.keeper.phone = self.phone

    @property
    def worker(self) -> WorkerHandle | None:
        return self.link.worker

    @worker.setter
    def worker(self, handle: WorkerHandle | None) -> None:
        self.link.worker = handle

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"session-{self.id}")

    # -- WorkerListener (called by the pool) -------------------------------------------------

    def on_worker_event(self, event: Event | BotFinished) -> None:
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
        if self.phone is not None:
            self.phone.from_bot(msg)

    def _phone_closed(self, by: ClosedBy, code: int, reason: str) -> None:
        """The phone's WebSocket closed (the line, on the loop): what that means for the
        session. Before its stream started, the join step sees it."""
        line = self.phone
        if self._ending or line is None or line.call is None:
            return
        if by is ClosedBy.PHONE:
            self.on_worker_event(ParticipantLeft(participant=line.caller(), reason="hung up"))
        elif by is ClosedBy.BOT and code in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
            # The bot hung up on its way out of bot(): as a hosted bot leaving its room.
            self.on_worker_event(CallStateUpdated(state="left"))
        else:
            self.stop(EndReason.CALL_ENDED, f"the call's WebSocket was closed ({code}): {reason}")

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
        else:
            await self._step(self._prepare_room())
        self._set_state(SessionState.ASSIGNED, assigned_at=time.time())
        self.bot = bot_cls(self.link, self.request.bot_config())
        data = await self._step(self._join())
        self._set_state(SessionState.JOINED, joined_at=time.time())
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
        if self.phone is not None:
            return await self._answer_phone(self.phone)
        worker = self.worker
        assert worker is not None and self.room.url is not None and self.bot is not None
        try:
            token = await self.room.bot_token(self.ends_by)
        except DailyAPIError as exc:
            raise End(EndReason.REST_FAILED, str(exc)) from None
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.s.config.pool.start_timeout_s)
        except (TimeoutError, WorkerGone) as exc:
            raise End(EndReason.NO_WORKER, f"worker did not start: {exc}") from None
        self.s.pool.mark_busy(worker)
        self._set_state(SessionState.JOINING)
        timeout = self.s.config.sessions.join_timeout_s
        seat = Seat(id=self.link.next_id(), session_id=self.id, room_url=self.room.url, token=token,
                    user_name=BOT_NAME, audio=self.audio, timeout_s=timeout)
        join = self.bot.join_message(seat, self._hosting)
        self._join_sent = True
        reply = await self.s.pool.request(worker, join, timeout + 5)
        if isinstance(reply, Err):
            if worker.state == WorkerState.DEAD:
                raise End(EndReason.WORKER_CRASHED, f"worker lost while joining: {reply.message}")
            if reply.code == ErrCode.BOT_ERROR:  # a hosted bot raised before joining: its traceback
                raise End(EndReason.BOT_ERROR, reply.message)
            if reply.code == ErrCode.BOT_FINISHED:
                raise End(EndReason.BOT_FINISHED, reply.message)
            raise End(EndReason.JOIN_FAILED, f"{reply.code}: {reply.message}")
        data: dict[str, Any] = reply.result or {}
        local = (data.get("participants") or {}).get("local") or {}
        self.participants.bot_joined(local.get("id"))
        return data

    async def _answer_phone(self, line: PhoneLine) -> dict[str, Any]:
        """The phone's join: its stream arrives on the URL and starts, then the worker runs
        the bot over it, the call relayed from the first message on."""
        worker = self.worker
        assert worker is not None and self.bot is not None
        tel = self.s.config.telephony
        done, _ = await asyncio.wait({line.started}, timeout=max(0.0, line.expires_at - time.monotonic()))
        if not done and not line.used:
            raise End(EndReason.JOIN_FAILED, f"no call came to its WebSocket URL within {tel.ws_url_ttl_s} s")
        try:
            call = await asyncio.shield(line.started)  # the socket's handler settles it, bounded by its handshake
        except HandshakeRefused as exc:
            raise End(EndReason.JOIN_FAILED, f"the phone's stream did not start: {exc.reason}") from None
        self.record.extra["phone"] = line.view()
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.s.config.pool.start_timeout_s)
        except (TimeoutError, WorkerGone) as exc:
            raise End(EndReason.NO_WORKER, f"worker did not start: {exc}") from None
        self.s.pool.mark_busy(worker)
        self._set_state(SessionState.JOINING)
        timeout = self.s.config.sessions.join_timeout_s
        seat_id = self.link.next_id()
        urls = {"twilio": self.s.config.twilio_api_url} if self.s.config.twilio_api_url else {}
        path, query, headers, client = line.handshake
        websocket = WebSocketCall(socket=seat_id, path=path, query=query, headers=headers, client=client,
                                  max_queued=tel.max_queued_messages, max_message_bytes=tel.max_message_bytes,
                                  api_urls=urls)
        seat = Seat(id=seat_id, session_id=self.id, room_url="", token="", user_name=BOT_NAME, audio=self.audio,
                    timeout_s=timeout, websocket=websocket)
        join = self.bot.join_message(seat, self._hosting)
        self._join_sent = True
        reply = await self.s.pool.request(worker, join, timeout + 5,
                                          on_sent=lambda: line.start_relay(seat_id, lambda m: self.s.pool.relay(worker, m)))
        if isinstance(reply, Err):
            if worker.state == WorkerState.DEAD:
                raise End(EndReason.WORKER_CRASHED, f"worker lost while joining: {reply.message}")
            if reply.code == ErrCode.BOT_ERROR:
                raise End(EndReason.BOT_ERROR, reply.message)
            if reply.code == ErrCode.BOT_FINISHED:
                raise End(EndReason.BOT_FINISHED, reply.message)
            raise End(EndReason.JOIN_FAILED, f"{reply.code}: {reply.message}")
        caller = line.caller()
        self.participants.bot_joined(BOT_NAME)
        self.log.info("phone call answered", **call.view())
        return {"participants": {"local": {"id": BOT_NAME, "info": {"isLocal": True, "userName": BOT_NAME}},
                                 caller["id"]: caller}}

    def _hosting(self) -> Hosting:
        """What a bot the worker hosts is handed for this session: its ``runner_args.body``,
        the Daily proxy and this session's key for it, its profile's env and its keys."""
        url = self.s.daily_proxy_url
        return Hosting(body=self.request.runner_body(self.daily_key, url), api_url=url, api_key=self.daily_key,
                       env=self.s.bot_env(self.request.profile), provider_keys=self.request.secrets.provider_keys)

    async def _failover(self, reason: str) -> None:
        lost_at = time.monotonic()
        self.worker = None
        if not self.s.config.sessions.failover:
            raise End(EndReason.WORKER_CRASHED, reason)
        if self.phone is not None:
            raise End(EndReason.WORKER_CRASHED, f"{reason}; a phone call's WebSocket cannot be rejoined: the call ends")
        self.log.warning("worker lost; failing over", reason=reason)
        try:
            self.worker = self.s.pool.acquire(self.id, self, failover=True)
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
            if event.error is None and self._hung_up:
                self.stop(EndReason.PARTICIPANT_LEFT, "the caller hung up")
            elif event.error is None:
                self.stop(EndReason.BOT_FINISHED, "bot() returned")
            else:
                self.stop(EndReason.BOT_ERROR, event.error)
            return
        if isinstance(event, ParticipantLeft) and self.phone is not None:
            self._caller_hung_up(event)
            return
        if isinstance(event, DialinReady) and self.dialin is not None:
            failed = await self.dialin.put_through(self.record.extra.get("sip_endpoint") or event.sip_endpoint)
            if failed is not None:
                self.stop(EndReason.DIALIN_FAILED, failed)
        await self.call.on_event(self.bot, event, in_call=self.record.state == SessionState.JOINED)

    def _caller_hung_up(self, event: ParticipantLeft) -> None:
        """The phone hung up. The bot hears its call end (its transport's
        ``on_client_disconnected``) and has a moment to return from bot() by itself, as it
        would on Pipecat Cloud; either way the session ends ``participant_left``."""
        self.participants.left(event.participant or {})
        if not self.request.end_on_last_leave:
            self.call.arm_idle()
            return
        self._hung_up = True
        self.timers.arm("hung_up", HOSTED_LEFT_GRACE_S, self.stop, EndReason.PARTICIPANT_LEFT, "the caller hung up")

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
        self._ending = True
        cancelled = await self._leave()
        if self.phone is not None:
            code = CloseCode.GOING_AWAY if reason is EndReason.DRAINED else \
                CloseCode.SERVER_ERROR if reason.failure else CloseCode.NORMAL
            _, gone = await self._bounded(self.phone.close(code, f"the call ended: {reason.value}"))
            cancelled = cancelled or gone
            self.record.extra["phone"] = self.phone.view()
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
        self._close(final.value)
        if cancelled:
            raise asyncio.CancelledError

    async def _leave(self) -> bool:
        """The bot leaves if it was asked to join, and the worker goes back to the pool (or
        is retired when the leave failed). Returns whether the actor was cancelled meanwhile."""
        worker = self.worker
        if worker is None or worker.state == WorkerState.DEAD:
            return False
        cancelled = False
        calls_done: int | None = worker.calls_done
        if self._join_sent:
            self._set_state(SessionState.LEAVING)
            leave = Leave(id=self.link.next_id(), timeout_s=LEAVE_TIMEOUT_S)
            reply, cancelled = await self._bounded(self.s.pool.request(worker, leave, LEAVE_TIMEOUT_S + 3))
            if not isinstance(reply, Ok):
                self.log.warning("leave failed; retiring the worker",
                                 error=reply.message if isinstance(reply, Err) else "cut off")
                calls_done = None
            else:
                calls_done = int((reply.result or {}).get("calls_done", worker.calls_done))
        self.keeper.save_counters()
        self.s.pool.release(worker, calls_done)
        return cancelled

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
