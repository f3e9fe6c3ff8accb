"""Sessions: one actor (an asyncio task with a mailbox) per bot session.

The actor owns its session's state; nothing else mutates it. The registry only creates
actors and routes to them. Life of a session::

    requested -> assigned -> joining -> joined -> leaving -> ended
                 (or failed from any state, with an end reason)

The actor reads its mailbox at every stage. Slow work -- preparing the room, waiting for
the worker to boot, joining, a failover's rejoin -- runs as a step the actor can cancel, so
a stop, a drain or an ask takes effect at once; events that arrive meanwhile are handled,
in order, when the step is done. Asks that await a worker run beside the actor, never in it.

On the way out the bot leaves, the worker is returned or recycled, the room is deleted if
the session created it, and the record is written. With failover on, a worker lost while
joined is replaced and the bot rejoins the same room with a fresh token; the participants
are reconciled with what the rejoin reports, and the session keeps its id and records the
gap. Whatever is still queued to an actor that has finished is answered with
``SessionGone``, never dropped.

The parts each do one job: ``SessionRoom`` (REST: room and tokens), ``Participants``
(who is in the call), ``Timers``, ``BotLink`` (what the bot acts through), the store
(persistence) and ``session_view`` (what the API shows).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
    Join,
    Leave,
    Ok,
    ParticipantJoined,
    ParticipantLeft,
    RunBot,
    SendAppMessage,
)
from supervisor.bots import BOT_KINDS, Bot
from supervisor.bots.pipecat import PipecatBot
from supervisor.daily_rest import DailyAPIError
from supervisor.pool import PoolFull, WorkerGone, WorkerHandle, WorkerState
from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.participants import Participant, Participants
from supervisor.sessions.requests import (
    CommandRefused,
    InvalidStart,
    Prepared,
    SessionGone,
    StartRequest,
    runner_body,
    stream_config,
)
from supervisor.sessions.room import SessionRoom, TokenRefused
from supervisor.sessions.services import Services
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.timers import Timers
from supervisor.sessions.view import describe_record
from supervisor.store import SessionRecord

log = structlog.get_logger("supervisor.sessions")

T = TypeVar("T")

LEAVE_TIMEOUT_S = 5.0
HOSTED_LEFT_GRACE_S = 5.0  # a hosted bot that left has this long to return from bot()


# -- mailbox messages ------------------------------------------------------------------------


@dataclass
class _Stop:
    reason: EndReason
    detail: str | None = None
    cleanup_by: float | None = None  # monotonic deadline for leaving and deleting the room


@dataclass
class _WorkerEvent:
    event: Event | BotFinished


@dataclass
class _WorkerLost:
    reason: str


@dataclass
class _Ask:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]


Message = _Stop | _WorkerEvent | _WorkerLost | _Ask


class _End(Exception):
    """Ends the actor's life with a reason (a stop, or a step that failed)."""

    def __init__(self, reason: EndReason, detail: str | None) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


class Session:
    def __init__(self, services: Services, request: StartRequest) -> None:
        self.s = services
        self.request = request
        self.id = str(uuid.uuid4())
        self.stream_token = secrets.token_urlsafe(24)
        self.daily_key = secrets.token_urlsafe(24)  # the bot's key for the supervisor's Daily proxy
        self.mailbox: asyncio.Queue[Message] = asyncio.Queue()
        cfg = services.config
        bot_cls = BOT_KINDS.get(request.kind)
        self.audio = AudioSettings(cfg.audio.sample_rate, cfg.audio.channels, cfg.audio.frame_ms,
                                   realtime_slack_ms=bot_cls.realtime_slack_ms if bot_cls else 0)
        self.record = SessionRecord(id=self.id, state=SessionState.REQUESTED, profile=request.profile,
                                    kind=request.kind, requested_at=time.time(),
                                    max_duration_s=request.max_duration_s, extra=scrub.masked(request.extra))
        self.room = SessionRoom(self.id, request.room_request(), cfg, services.rest, services.store,
                                services.room_pool)
        self.participants = Participants()
        self.timers = Timers()
        self.link = BotLink(self.id, cfg.audio.sample_rate, cfg.audio.channels, cfg.run_dir, services.pool, self.stop,
                            services.frame_dropped)
        self.bot: Bot | None = None
        self.prepared: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
        self.finished = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._deferred: list[Event | BotFinished] = []  # events that arrived while a step ran
        self._asks: set[asyncio.Task[None]] = set()
        self._dialin: asyncio.Future[dict[str, Any]] | None = None  # the one pinlessCallUpdate
        self._greeted = False  # on_first_participant_joined fires once per session
        self._cleanup_by: float | None = None
        self._join_sent = False  # the worker was asked to join: it must be asked to leave
        self._worker_counts = (0, 0)  # frames out/dropped of workers lost to failover
        # The session must be over by then; rooms and tokens outlive it (see SessionRoom).
        p = cfg.pool
        self.ends_by = time.time() + p.start_timeout_s + cfg.sessions.join_timeout_s + request.max_duration_s
        self.log = log.bind(session_id=self.id)

    @property
    def worker(self) -> WorkerHandle | None:
        return self.link.worker

    @worker.setter
    def worker(self, handle: WorkerHandle | None) -> None:
        if handle is None and self.link.worker is not None:
            w = self.link.worker
            self._worker_counts = (self._worker_counts[0] + w.frames_out, self._worker_counts[1] + w.frames_dropped)
        self.link.worker = handle

    # -- public, called from outside the actor ---------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"session-{self.id}")

    def stop(self, reason: EndReason = EndReason.STOPPED, detail: str | None = None, *,
             cleanup_by: float | None = None) -> None:
        """End the session at whatever stage it is. ``cleanup_by`` (monotonic) bounds the
        leave and the room delete; a room not deleted by then stays in the ledger."""
        self.mailbox.put_nowait(_Stop(reason, detail, cleanup_by))

    async def ask(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside the actor and return its result (awaited beside the actor if a
        coroutine). Raises ``SessionGone`` once the session has finished."""
        if self.finished.is_set():
            raise SessionGone(f"session {self.id} has {self.record.state}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.mailbox.put_nowait(_Ask(fn, fut))
        return await fut

    # -- WorkerListener (called by the pool) -------------------------------------------------

    def on_worker_event(self, event: Event | BotFinished) -> None:
        self.mailbox.put_nowait(_WorkerEvent(event))

    def on_worker_audio(self, header: AudioIn, pcm: Any) -> None:
        bot = self.bot
        if bot is not None:
            try:
                bot.on_audio(header, pcm)
            except Exception:
                self.log.exception("bot audio handler failed")

    def on_worker_gone(self, reason: str) -> None:
        self.mailbox.put_nowait(_WorkerLost(reason))

    # -- the actor ---------------------------------------------------------------------------

    async def _run(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self.id)
        # Scrubbed from logs and errors while the session lives: its own keys and the request's.
        request = self.request
        held = scrub.register(self.stream_token, self.daily_key, *request.provider_keys.values(),
                              *scrub.secrets_in(request.bot_config), *scrub.secrets_in(request.runner_body),
                              *scrub.secrets_in(request.extra))
        cancelled = False
        try:
            self._save()
            reason, detail = await self._life()
        except _End as end:
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

    async def _life(self) -> tuple[EndReason, str | None]:
        bot_cls = BOT_KINDS.get(self.request.kind)
        if bot_cls is None:
            raise _End(EndReason.ERROR, f"no bot of kind {self.request.kind!r}")
        await self._step(self._prepare_room())
        self._set_state(SessionState.ASSIGNED, assigned_at=time.time())
        self.bot = bot_cls(self.link, self.request.bot_config)
        data = await self._step(self._join())
        self._set_state(SessionState.JOINED, joined_at=time.time())
        assert self.record.joined_at is not None and self.record.requested_at is not None
        self.ends_by = self.record.joined_at + self.request.max_duration_s
        if self.s.metrics is not None:
            self.s.metrics.start_latency(self.record.joined_at - self.record.requested_at)
        self.timers.arm("max_duration", self.request.max_duration_s, self.stop, EndReason.MAX_DURATION)
        await self.bot.on_joined(data)
        for human in self._humans_in(data):
            await self._announce(human)
        self._arm_idle()
        while True:
            for event in self._take_deferred():
                await self._on_event(event)
            msg = await self.mailbox.get()
            if isinstance(msg, _Stop):
                self._cleanup_by = msg.cleanup_by
                return msg.reason, msg.detail
            if isinstance(msg, _Ask):
                self._answer(msg)
            elif isinstance(msg, _WorkerEvent):
                await self._on_event(msg.event)
            elif isinstance(msg, _WorkerLost):
                await self._step(self._failover(msg.reason))

    async def _step(self, work: Awaitable[T]) -> T:
        """Run ``work`` while still reading the mailbox: a stop cancels it and ends the
        session, asks are answered, events wait until the step is done."""
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        getter: asyncio.Task[Message] | None = None
        try:
            while not task.done():
                if getter is None:
                    getter = asyncio.ensure_future(self.mailbox.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    msg, getter = getter.result(), None
                    if isinstance(msg, _Stop):
                        self._cleanup_by = msg.cleanup_by
                        raise _End(msg.reason, msg.detail)
                    if isinstance(msg, _Ask):
                        self._answer(msg)
                    elif isinstance(msg, _WorkerEvent):
                        self._deferred.append(msg.event)
                    # _WorkerLost: the step sees it too (its request fails or the worker
                    # never becomes ready), and ends with the right reason.
            return task.result()
        finally:
            if getter is not None:
                getter.cancel()  # a cancelled get leaves its item in the queue
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # cancelled work has unwound before the actor goes on
            elif not task.cancelled():
                task.exception()  # retrieved: an ended step's error is the _End above

    def _take_deferred(self) -> list[Event | BotFinished]:
        events, self._deferred = self._deferred, []
        return events

    def _answer(self, ask: _Ask) -> None:
        try:
            result = ask.fn()
        except Exception as exc:
            if not ask.future.done():
                ask.future.set_exception(exc)
            return
        if not asyncio.iscoroutine(result):
            if not ask.future.done():
                ask.future.set_result(result)
            return
        task = asyncio.get_running_loop().create_task(_settle(result, ask.future))
        self._asks.add(task)
        task.add_done_callback(self._asks.discard)

    # -- steps ---------------------------------------------------------------------------------

    async def _prepare_room(self) -> None:
        try:
            user_token = await self.room.prepare(self.ends_by)
        except DailyAPIError as exc:
            self._refuse_start(exc)
            raise _End(EndReason.REST_FAILED, str(exc)) from None
        except TokenRefused as exc:
            self._refuse_start(InvalidStart(str(exc)))
            raise _End(EndReason.REST_FAILED, str(exc)) from None
        finally:
            self._record_room()
        assert self.room.url is not None
        if not self.prepared.done():
            self.prepared.set_result(Prepared(self.id, self.room.url, user_token, self.stream_token))

    def _refuse_start(self, exc: Exception) -> None:
        if not self.prepared.done():
            self.prepared.set_exception(exc)

    def _record_room(self) -> None:
        r = self.record
        r.room_url, r.room_name, r.room_created = self.room.url, self.room.name, self.room.created
        if self.room.sip_endpoint:
            r.extra["sip_endpoint"] = self.room.sip_endpoint
        self._save()

    async def _join(self) -> dict[str, Any]:
        worker = self.worker
        assert worker is not None and self.room.url is not None
        try:
            token = await self.room.bot_token(self.ends_by)
        except DailyAPIError as exc:
            raise _End(EndReason.REST_FAILED, str(exc)) from None
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.s.config.pool.start_timeout_s)
        except (TimeoutError, WorkerGone) as exc:
            raise _End(EndReason.NO_WORKER, f"worker did not start: {exc}") from None
        self.s.pool.mark_busy(worker)
        self._set_state(SessionState.JOINING)
        timeout = self.s.config.sessions.join_timeout_s
        join: Join | RunBot
        if isinstance(self.bot, PipecatBot):
            join = RunBot(id=self.link.next_id(), bot=self.bot.spec, room_url=self.room.url, token=token,
                          session_id=self.id, body=runner_body(self.request, self.daily_key, self.s.daily_proxy_url), api_url=self.s.daily_proxy_url,
                          api_key=self.daily_key, timeout_s=timeout, env=self.s.bot_env(self.request.profile),
                          provider_keys=self.request.provider_keys)
        else:
            join = Join(id=self.link.next_id(), meeting_url=self.room.url, meeting_token=token,
                        user_name=self.request.bot_name, audio=self.audio, timeout_s=timeout)
        self._join_sent = True
        reply = await self.s.pool.request(worker, join, timeout + 5)
        if isinstance(reply, Err):
            if worker.state == WorkerState.DEAD:
                raise _End(EndReason.WORKER_CRASHED, f"worker lost while joining: {reply.message}")
            if reply.code == ErrCode.BOT_ERROR:  # a hosted bot raised before joining: its traceback
                raise _End(EndReason.BOT_ERROR, reply.message)
            if reply.code == ErrCode.BOT_FINISHED:
                raise _End(EndReason.BOT_FINISHED, reply.message)
            raise _End(EndReason.JOIN_FAILED, f"{reply.code}: {reply.message}")
        data: dict[str, Any] = reply.result or {}
        local = (data.get("participants") or {}).get("local") or {}
        self.participants.bot_joined(local.get("id"))
        return data

    def _humans_in(self, join_data: dict[str, Any]) -> list[Participant]:
        present = join_data.get("participants") or {}
        return [h for key, p in present.items() if key != "local" and (h := self.participants.joined(p))]

    async def _failover(self, reason: str) -> None:
        lost_at = time.monotonic()
        self.worker = None
        if not self.s.config.sessions.failover:
            raise _End(EndReason.WORKER_CRASHED, reason)
        self.log.warning("worker lost; failing over", reason=reason)
        try:
            self.worker = self.s.pool.acquire(self.id, self, failover=True)
        except PoolFull as exc:
            raise _End(EndReason.WORKER_CRASHED, f"{reason}; no worker for failover: {exc}") from None
        try:
            data = await self._join()
        except _End as exc:
            raise _End(EndReason.WORKER_CRASHED, f"{reason}; failover failed: {exc.detail}") from None
        gap_ms = (time.monotonic() - lost_at) * 1000
        self.record.failovers += 1
        self.record.failover_gap_ms = round(self.record.failover_gap_ms + gap_ms, 1)
        self._set_state(SessionState.JOINED)
        if self.s.metrics is not None:
            self.s.metrics.failover(gap_ms / 1000)
        self.log.info("failover complete", gap_ms=round(gap_ms, 1), failovers=self.record.failovers)
        assert self.bot is not None  # it keeps its state across the rejoin: on_joined is once per session
        arrived, gone = self.participants.reconcile(data.get("participants") or {})
        for human in gone:
            await self.bot.on_participant_left(human.raw, "left during failover")
        for human in arrived:
            await self._announce(human)
        if gone and not self.participants.humans:
            self._nobody_left()

    # -- events --------------------------------------------------------------------------------

    async def _announce(self, human: Participant) -> None:
        assert self.bot is not None
        self.timers.cancel("idle")
        if not self._greeted:
            self._greeted = True
            await self.bot.on_first_participant_joined(human.raw)
        await self.bot.on_participant_joined(human.raw)

    def _nobody_left(self) -> None:
        if self.request.end_on_last_leave:
            self.stop(EndReason.PARTICIPANT_LEFT, "the last participant left")
        else:
            self._arm_idle()

    async def _on_event(self, event: Event | BotFinished) -> None:
        assert self.bot is not None
        if isinstance(event, BotFinished):
            if event.error is None:
                self.stop(EndReason.BOT_FINISHED, "bot() returned")
            else:
                self.stop(EndReason.BOT_ERROR, event.error)
            return
        if isinstance(event, ParticipantJoined):
            human = self.participants.joined(event.participant)
            if human is not None:
                await self._announce(human)
        elif isinstance(event, ParticipantLeft):
            gone = self.participants.left(event.participant or {})
            if gone is not None:
                await self.bot.on_participant_left(event.participant, event.reason or "")
                if not self.participants.humans:
                    self._nobody_left()
        elif isinstance(event, DialinReady):
            await self._dialin_ready(event)
        elif isinstance(event, CallStateUpdated) and event.state == "left" and self.record.state == SessionState.JOINED:
            if isinstance(self.bot, PipecatBot):
                # A Pipecat bot leaves on its way out of bot(): how bot() ends (BotFinished)
                # is the session's end reason if it comes soon; else it was removed.
                self.timers.arm("left", HOSTED_LEFT_GRACE_S, self.stop, EndReason.CALL_ENDED,
                                "the bot left the call and bot() did not end")
            else:
                self.stop(EndReason.CALL_ENDED, "the bot was removed from the call (ejected, room expired or deleted)")
        await self.bot.on_event(event)

    async def _dialin_ready(self, event: DialinReady) -> None:
        """The room's SIP endpoint is ready: forward the waiting call to it (once, whoever
        asks first: this, or a hosted bot through the Daily proxy)."""
        settings = self.request.extra.get("dialin_settings")
        if settings is None:
            return
        endpoint = self.record.extra.get("sip_endpoint") or event.sip_endpoint
        if not endpoint:
            self.stop(EndReason.DIALIN_FAILED, "the room has no SIP endpoint")
            return
        sip_uri = endpoint if str(endpoint).startswith("sip:") else f"sip:{endpoint}"
        try:
            await self.forward_dialin(sip_uri)
        except DailyAPIError as exc:
            self.stop(EndReason.DIALIN_FAILED, f"pinlessCallUpdate failed: {exc}")

    def forward_dialin(self, sip_uri: str) -> asyncio.Future[dict[str, Any]]:
        """``pinlessCallUpdate`` for this session's call, made once: every caller gets the
        one call's outcome (Daily's reply, or its ``DailyAPIError``)."""
        if self._dialin is None:
            settings = self.request.extra["dialin_settings"]
            self._dialin = asyncio.ensure_future(
                self.s.rest.pinless_call_update(settings["call_id"], settings["call_domain"], sip_uri))
            self.log.info("dial-in forwarded", call_id=settings["call_id"], sip_uri=sip_uri)
        return self._dialin

    def _arm_idle(self) -> None:
        if self.participants.humans:
            return
        idle_s = self.s.config.sessions.idle_timeout_s
        self.timers.arm("idle", idle_s, self.stop, EndReason.IDLE, f"no participant for {idle_s:g}s")

    # -- asks the API makes --------------------------------------------------------------------

    async def send_app_message(self, message: Any, participant_id: str | None) -> Any:
        """Send an app message through the bot (asked of the actor via ``ask``)."""
        reply = await self.link.command(SendAppMessage(id=self.link.next_id(), message=message,
                                                       participant_id=participant_id))
        if isinstance(reply, Err):
            raise CommandRefused(f"{reply.code}: {reply.message}")
        return reply.result

    def stream_config(self) -> dict[str, Any]:
        """The first message a stream engine receives."""
        return stream_config(self.id, self.request, self.record.room_url, self.audio)

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
        for task in list(self._asks):
            task.cancel()
        cancelled = False
        worker = self.worker
        if worker is not None and worker.state != WorkerState.DEAD:
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
            self._save_counters()
            self.s.pool.release(worker, calls_done)
        self._save_counters()
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
        self.finished.set()
        # Everything still queued is answered, never dropped.
        while not self.mailbox.empty():
            msg = self.mailbox.get_nowait()
            if isinstance(msg, _Ask) and not msg.future.done():
                msg.future.set_exception(SessionGone(f"session {self.id} has {final.value}"))
        if cancelled:
            raise asyncio.CancelledError

    async def _bounded(self, work: Awaitable[T]) -> tuple[T | None, bool]:
        """``work``'s result, or None when the cleanup deadline passed first; and whether
        the actor was cancelled meanwhile."""
        timeout = None if self._cleanup_by is None else max(0.0, self._cleanup_by - time.monotonic())
        try:
            return await asyncio.wait_for(work, timeout), False
        except TimeoutError:
            return None, False
        except asyncio.CancelledError:
            return None, True

    # -- persistence and views -----------------------------------------------------------------

    def _set_state(self, state: SessionState, **stamps: Any) -> None:
        self.record.state = state
        for key, value in stamps.items():
            setattr(self.record, key, value)
        self._save()
        self.s.publish("session", {"session_id": self.id, "state": state.value, "profile": self.request.profile,
                                   "end_reason": self.record.end_reason})
        if self.s.cluster is not None:
            self.s.cluster.publish_session(self.describe())
        self.log.info("session state", state=state.value, end_reason=self.record.end_reason)

    def _save(self) -> None:
        self._save_counters()
        try:
            self.s.store.save(self.record)
        except Exception:
            self.log.exception("could not write the session record")

    def _save_counters(self) -> None:
        r, worker = self.record, self.worker
        out, dropped = self._worker_counts
        if worker is not None:
            r.worker_id, r.worker_pid = worker.id, worker.pid
            r.frames_in = worker.frames_in
            out, dropped = out + worker.frames_out, dropped + worker.frames_dropped
        r.worker_frames_out, r.worker_frames_dropped = out, dropped
        r.frames_out = self.link.frames_out_sent
        r.frames_dropped = self.link.frames_out_dropped

    def describe(self) -> dict[str, Any]:
        self._save_counters()
        return describe_record(self.record, participants=self.participants.views(), bot_id=self.participants.bot_id)


async def _settle(coro: Awaitable[Any], future: asyncio.Future[Any]) -> None:
    """Await an ask's coroutine and hand its outcome to the asker; a cancelled ask (the
    session ended) is answered with ``SessionGone``."""
    try:
        result = await coro
    except asyncio.CancelledError:
        if not future.done():
            future.set_exception(SessionGone("the session ended before the request was carried out"))
        raise
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
    else:
        if not future.done():
            future.set_result(result)
