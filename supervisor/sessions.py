"""Sessions: one actor (an asyncio task with a mailbox) per bot session.

The actor owns its session's state; nothing else mutates it. The registry only creates
actors and routes to them. Life of a session::

    requested -> assigned -> joining -> joined -> leaving -> ended
                 (or failed from any state, with an end reason)

On the way out the bot leaves, the worker is returned or recycled, the room is deleted if
the session created it, and the record is written. With failover on, a worker lost while
joined is replaced and the bot rejoins the same room with a fresh token; the session
keeps its id and records the gap. Whatever is still queued to an actor that has finished
is answered with ``SessionGone``, never dropped.
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from protocol.audio import AudioIn, AudioOut
from protocol.framing import encode
from protocol.messages import (
    AudioSettings,
    CallStateUpdated,
    Command,
    DialinReady,
    Err,
    ErrCode,
    Event,
    Join,
    Leave,
    Ok,
    ParticipantJoined,
    ParticipantLeft,
    SendAppMessage,
)
from supervisor.bots import BOT_KINDS, Bot
from supervisor.config import Config
from supervisor.daily_rest import DailyAPIError, DailyREST, DailyRoomParams, DailyRoomProperties, DailyRoomSipParams
from supervisor.pool import Pool, PoolFull, WorkerGone, WorkerHandle
from supervisor.store import SessionRecord, Store

log = structlog.get_logger("supervisor.sessions")


class SessionState(enum.StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    JOINING = "joining"
    JOINED = "joined"
    LEAVING = "leaving"
    ENDED = "ended"
    FAILED = "failed"


class EndReason(enum.StrEnum):
    STOPPED = "stopped"
    MAX_DURATION = "max_duration"
    IDLE = "idle"
    PARTICIPANT_LEFT = "participant_left"
    JOIN_FAILED = "join_failed"
    WORKER_CRASHED = "worker_crashed"
    REST_FAILED = "rest_failed"
    DRAINED = "drained"
    SUPERVISOR_LOST = "supervisor_lost"
    NO_WORKER = "no_worker"
    CALL_ENDED = "call_ended"  # ejected, room expired or deleted under the bot
    BOT_ENDED = "bot_ended"
    DIALIN_FAILED = "dialin_failed"
    ERROR = "error"


# End reasons that are a failure of the session rather than a normal end.
FAILURES = {EndReason.JOIN_FAILED, EndReason.WORKER_CRASHED, EndReason.REST_FAILED, EndReason.NO_WORKER,
            EndReason.SUPERVISOR_LOST, EndReason.DIALIN_FAILED, EndReason.ERROR}


class SessionGone(Exception):
    """The session has finished; the request could not be carried out."""


class CommandRefused(Exception):
    """The worker refused a command (the call client's error text)."""


@dataclass
class StartRequest:
    """A validated request to start a bot session (built by the HTTP layer)."""

    profile: str
    kind: str
    bot_config: dict[str, Any] = field(default_factory=dict)
    max_duration_s: int = 7200
    room_url: str | None = None  # an existing room: not ours to delete
    room_properties: dict[str, Any] = field(default_factory=dict)
    room_privacy: str = "private"
    user_token_properties: dict[str, Any] = field(default_factory=dict)
    bot_name: str = "bot"
    sip: dict[str, Any] | None = None  # dial-in room SIP settings
    end_on_last_leave: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # body, dial-in settings, … kept on the record

    @property
    def pooled(self) -> bool:
        """A plain session that a pre-created room with default tokens can serve."""
        return not (self.room_url or self.room_properties or self.user_token_properties or self.sip
                    or self.bot_name != "bot")


@dataclass
class Prepared:
    """What the start call answers with once the room and tokens exist."""

    session_id: str
    room_url: str
    user_token: str
    stream_token: str


# -- mailbox messages ------------------------------------------------------------------------


@dataclass
class _Stop:
    reason: EndReason
    detail: str | None = None


@dataclass
class _WorkerEvent:
    event: Event


@dataclass
class _WorkerLost:
    reason: str


@dataclass
class _Ask:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]


Message = _Stop | _WorkerEvent | _WorkerLost | _Ask


class Services:
    """What every session needs, shared."""

    def __init__(self, config: Config, pool: Pool, rest: DailyREST, store: Store,
                 publish: Callable[[str, dict[str, Any]], None], metrics: Any = None, room_pool: Any = None) -> None:
        self.room_pool = room_pool
        self.config = config
        self.pool = pool
        self.rest = rest
        self.store = store
        self.publish = publish
        self.metrics = metrics


class Session:
    def __init__(self, services: Services, request: StartRequest, worker: WorkerHandle | None = None) -> None:
        self.s = services
        self.request = request
        self.id = str(uuid.uuid4())
        self.stream_token = secrets.token_urlsafe(24)
        self.worker: WorkerHandle | None = worker
        self.mailbox: asyncio.Queue[Message] = asyncio.Queue()
        cfg = services.config
        bot_cls = BOT_KINDS.get(request.kind)
        self.audio = AudioSettings(cfg.audio.sample_rate, cfg.audio.channels, cfg.audio.frame_ms,
                                   realtime_slack_ms=bot_cls.realtime_slack_ms if bot_cls else 0)
        self.sample_rate, self.channels = cfg.audio.sample_rate, cfg.audio.channels
        self.run_dir = cfg.run_dir
        self._dialin_done = False
        self.record = SessionRecord(id=self.id, state=SessionState.REQUESTED, profile=request.profile, kind=request.kind,
                                    requested_at=time.time(), max_duration_s=request.max_duration_s,
                                    extra=dict(request.extra))
        self.participants: dict[str, dict[str, Any]] = {}
        self.bot_participant_id: str | None = None
        self.prepared: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
        self.finished = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.bot: Bot | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._had_human = False
        self._out_seq = 0
        self._room_name: str | None = None
        self._bot_token_value: str | None = None
        self.frames_out_sent = 0
        self.frames_out_dropped = 0
        self.log = log.bind(session_id=self.id)

    # -- public, called from outside the actor ---------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"session-{self.id}")

    def stop(self, reason: EndReason = EndReason.STOPPED, detail: str | None = None) -> None:
        self.mailbox.put_nowait(_Stop(reason, detail))

    async def ask(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside the actor and return its result (awaited if a coroutine)."""
        if self.finished.is_set():
            raise SessionGone(f"session {self.id} has {self.record.state}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.mailbox.put_nowait(_Ask(fn, fut))
        return await fut

    # -- WorkerListener (called by the pool) -------------------------------------------------

    def on_worker_event(self, event: Event) -> None:
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

    # -- BotContext ------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        return self.id

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        worker = self.worker
        if worker is None:
            self.frames_out_dropped += 1
            return False
        self._out_seq += 1
        ok = self.s.pool.channel.send_audio(encode(AudioOut(self._out_seq, sample_rate, channels)), pcm,
                                            to=worker.identity)
        if ok:
            self.frames_out_sent += 1
        else:
            self.frames_out_dropped += 1
        return ok

    async def command(self, cmd: Command, timeout_s: float = 10.0) -> Ok | Err:
        worker = self.worker
        if worker is None:
            return Err(cmd.id, ErrCode.EXITING, "no worker")
        return await self.s.pool.request(worker, cmd, timeout_s)

    def end(self, reason: str) -> None:
        self.stop(EndReason.BOT_ENDED, reason)

    def next_id(self) -> int:
        return self.s.pool.next_request_id()

    # -- the actor ---------------------------------------------------------------------------

    def _set_state(self, state: SessionState, **stamps: Any) -> None:
        self.record.state = state
        for key, value in stamps.items():
            setattr(self.record, key, value)
        self._save()
        self.s.publish("session", {"session_id": self.id, "state": state.value, "profile": self.request.profile,
                                   "end_reason": self.record.end_reason})
        self.log.info("session state", state=state.value, end_reason=self.record.end_reason)

    def _save(self) -> None:
        self._save_counters()
        try:
            self.s.store.save(self.record)
        except Exception:
            self.log.exception("could not write the session record")

    async def _run(self) -> None:
        structlog.contextvars.bind_contextvars(session_id=self.id)
        reason, detail = EndReason.ERROR, None
        try:
            self._save()
            await self._prepare_room()
            self._set_state(SessionState.ASSIGNED, assigned_at=time.time())
            reason, detail = await self._live()
        except _Fail as exc:
            reason, detail = exc.reason, exc.detail
        except asyncio.CancelledError:
            reason, detail = EndReason.DRAINED, "cancelled"
        except Exception as exc:
            self.log.exception("session crashed")
            reason, detail = EndReason.ERROR, f"{type(exc).__name__}: {exc}"
        finally:
            await self._finish(reason, detail)

    async def _prepare_room(self) -> None:
        req, cfg = self.request, self.s.config
        rest = self.s.rest
        try:
            ready = self.s.room_pool.take() if self.s.room_pool is not None and req.pooled else None
            if ready is not None:
                self.record.room_created = True
                self.record.room_url, self.record.room_name = ready.url, ready.name
                self._room_name = ready.name
                self._bot_token_value = ready.bot_token
                self._save()
                self.prepared.set_result(Prepared(self.id, ready.url, ready.user_token, self.stream_token))
                return
            if req.room_url:
                room_url = req.room_url
                self._room_name = room_url.rstrip("/").rsplit("/", 1)[-1]
            else:
                props = DailyRoomProperties(exp=time.time() + max(cfg.daily.room_exp_s, req.max_duration_s + 60),
                                            extra=dict(req.room_properties))
                if req.sip is not None:
                    props.sip = DailyRoomSipParams(**req.sip)
                name = f"{cfg.daily.room_prefix}{self.id}"
                room = await rest.create_room(DailyRoomParams(name=name, privacy=req.room_privacy, properties=props))
                self.record.room_created = True
                room_url, self._room_name = room.url, room.name
                self.record.extra["sip_endpoint"] = room.sip_endpoint
            self.record.room_url, self.record.room_name = room_url, self._room_name
            self._save()
            # Both tokens at once: one round trip less before the bot can join.
            user_token, self._bot_token_value = await asyncio.gather(
                rest.get_token(room_url, cfg.daily.token_exp_s, owner=False, params=req.user_token_properties or None),
                rest.get_token(room_url, cfg.daily.token_exp_s, owner=True, params={"user_name": req.bot_name}),
            )
        except DailyAPIError as exc:
            if not self.prepared.done():
                self.prepared.set_exception(exc)
            raise _Fail(EndReason.REST_FAILED, str(exc)) from None
        if not self.prepared.done():
            self.prepared.set_result(Prepared(self.id, room_url, user_token, self.stream_token))

    async def _bot_token(self) -> str:
        """The bot's owner token: the one fetched with the room, then a fresh one per rejoin."""
        assert self.record.room_url is not None
        if self._bot_token_value is not None:
            token, self._bot_token_value = self._bot_token_value, None
            return token
        try:
            return await self.s.rest.get_token(self.record.room_url, self.s.config.daily.token_exp_s, owner=True,
                                               params={"user_name": self.request.bot_name})
        except DailyAPIError as exc:
            raise _Fail(EndReason.REST_FAILED, str(exc)) from None

    async def _join(self) -> Any:
        worker = self.worker
        assert worker is not None and self.record.room_url is not None
        token = await self._bot_token()
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), self.s.config.pool.start_timeout_s)
        except (TimeoutError, WorkerGone) as exc:
            raise _Fail(EndReason.NO_WORKER, f"worker did not start: {exc}") from None
        self.s.pool.mark_busy(worker)
        self._set_state(SessionState.JOINING)
        timeout = self.s.config.sessions.join_timeout_s
        join = Join(id=self.next_id(), meeting_url=self.record.room_url, meeting_token=token,
                    user_name=self.request.bot_name, audio=self.audio, timeout_s=timeout)
        reply = await self.s.pool.request(worker, join, timeout + 5)
        if isinstance(reply, Err):
            if self.worker is None or worker.state.value == "dead":
                raise _Fail(EndReason.WORKER_CRASHED, f"worker lost while joining: {reply.message}")
            raise _Fail(EndReason.JOIN_FAILED, f"{reply.code}: {reply.message}")
        data = reply.result or {}
        local = (data.get("participants") or {}).get("local") or {}
        self.bot_participant_id = local.get("id")
        for pid, p in (data.get("participants") or {}).items():
            if pid != "local":
                self._track_participant(p)
        return data

    async def _live(self) -> tuple[EndReason, str | None]:
        bot_cls = BOT_KINDS.get(self.request.kind)
        if bot_cls is None:
            raise _Fail(EndReason.ERROR, f"no bot of kind {self.request.kind!r}")
        self.bot = bot_cls(self, self.request.bot_config)
        data = await self._join()
        self._set_state(SessionState.JOINED, joined_at=time.time())
        if self.s.metrics is not None:
            self.s.metrics.start_latency(self.record.joined_at - self.record.requested_at)  # type: ignore[operator]
        loop = asyncio.get_running_loop()
        self._timers["max_duration"] = loop.call_later(self.request.max_duration_s, self.stop, EndReason.MAX_DURATION)
        self._arm_idle()
        await self.bot.on_joined(data)
        for p in list(self.participants.values()):
            await self._human_joined(p["raw"])
        while True:
            msg = await self.mailbox.get()
            if isinstance(msg, _Stop):
                return msg.reason, msg.detail
            if isinstance(msg, _Ask):
                await self._answer(msg)
            elif isinstance(msg, _WorkerEvent):
                ended = await self._on_event(msg.event)
                if ended is not None:
                    return ended
            elif isinstance(msg, _WorkerLost):
                ended = await self._worker_lost(msg.reason)
                if ended is not None:
                    return ended

    async def _answer(self, ask: _Ask) -> None:
        try:
            result = ask.fn()
            if asyncio.iscoroutine(result):
                result = await result
            if not ask.future.done():
                ask.future.set_result(result)
        except Exception as exc:
            if not ask.future.done():
                ask.future.set_exception(exc)

    def _track_participant(self, p: dict[str, Any]) -> dict[str, Any] | None:
        pid = p.get("id")
        info = p.get("info") or {}
        if not pid or info.get("isLocal") or pid == self.bot_participant_id:
            return None
        entry = {"id": pid, "name": info.get("userName") or "", "is_bot": False, "raw": p}
        self.participants[pid] = entry
        return entry

    async def _human_joined(self, participant: dict[str, Any]) -> None:
        assert self.bot is not None
        self._cancel("idle")
        first = not self._had_human
        self._had_human = True
        if first:
            await self.bot.on_first_participant_joined(participant)
        await self.bot.on_participant_joined(participant)

    async def _on_event(self, event: Event) -> tuple[EndReason, str | None] | None:
        assert self.bot is not None
        if isinstance(event, ParticipantJoined):
            if self._track_participant(event.participant) is not None:
                await self._human_joined(event.participant)
        elif isinstance(event, ParticipantLeft):
            pid = (event.participant or {}).get("id")
            if self.participants.pop(pid, None) is not None:
                await self.bot.on_participant_left(event.participant, event.reason or "")
                if not self.participants:
                    if self.request.end_on_last_leave:
                        return EndReason.PARTICIPANT_LEFT, "the last participant left"
                    self._arm_idle()
        elif isinstance(event, DialinReady):
            failed = await self._dialin_ready(event)
            if failed is not None:
                await self.bot.on_event(event)
                return failed
        elif isinstance(event, CallStateUpdated) and event.state == "left" and self.record.state == SessionState.JOINED:
            await self.bot.on_event(event)
            return EndReason.CALL_ENDED, "the bot was removed from the call (ejected, room expired or deleted)"
        await self.bot.on_event(event)
        return None

    async def _dialin_ready(self, event: DialinReady) -> tuple[EndReason, str | None] | None:
        """The room's SIP endpoint is ready: forward the waiting call to it, once."""
        settings = self.request.extra.get("dialin_settings")
        if settings is None or self._dialin_done:
            return None
        self._dialin_done = True
        endpoint = self.record.extra.get("sip_endpoint") or event.sip_endpoint
        if not endpoint:
            return EndReason.DIALIN_FAILED, "the room has no SIP endpoint"
        sip_uri = endpoint if str(endpoint).startswith("sip:") else f"sip:{endpoint}"
        try:
            await self.s.rest.pinless_call_update(settings["call_id"], settings["call_domain"], sip_uri)
        except DailyAPIError as exc:
            return EndReason.DIALIN_FAILED, f"pinlessCallUpdate failed: {exc}"
        self.log.info("dial-in forwarded", call_id=settings["call_id"], sip_uri=sip_uri)
        return None

    async def send_app_message(self, message: Any, participant_id: str | None) -> Any:
        """Send an app message through the bot (runs inside the actor via ``ask``)."""
        reply = await self.command(SendAppMessage(id=self.next_id(), message=message, participant_id=participant_id))
        if isinstance(reply, Err):
            raise CommandRefused(f"{reply.code}: {reply.message}")
        return reply.result

    def stream_config(self) -> dict[str, Any]:
        """The first message a stream engine receives."""
        return {
            "type": "config",
            "session_id": self.id,
            "profile": self.request.profile,
            "room_url": self.record.room_url,
            "services": self.request.bot_config.get("services", {}),
            "config": self.request.bot_config.get("config", []),
            "service_options": self.request.bot_config.get("service_options", {}),
            "body": self.request.extra.get("body"),
            "dialin_settings": self.request.extra.get("dialin_settings"),
            "audio": {"sample_rate": self.sample_rate, "channels": self.channels, "frame_ms": self.audio.frame_ms},
        }

    def _arm_idle(self) -> None:
        if self.participants:
            return
        self._cancel("idle")
        self._timers["idle"] = asyncio.get_running_loop().call_later(
            self.s.config.sessions.idle_timeout_s, self.stop, EndReason.IDLE,
            f"no participant for {self.s.config.sessions.idle_timeout_s:g}s")

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    async def _worker_lost(self, reason: str) -> tuple[EndReason, str | None] | None:
        lost_at = time.monotonic()
        self.worker = None
        if not self.s.config.sessions.failover:
            return EndReason.WORKER_CRASHED, reason
        self.log.warning("worker lost; failing over", reason=reason)
        try:
            self.worker = self.s.pool.acquire(self.id, self)
        except PoolFull as exc:
            return EndReason.WORKER_CRASHED, f"{reason}; no worker for failover: {exc}"
        try:
            await self._join()
        except _Fail as exc:
            return EndReason.WORKER_CRASHED, f"{reason}; failover failed: {exc.detail}"
        gap_ms = (time.monotonic() - lost_at) * 1000
        self.record.failovers += 1
        self.record.failover_gap_ms = round(self.record.failover_gap_ms + gap_ms, 1)
        self._set_state(SessionState.JOINED)
        if self.s.metrics is not None:
            self.s.metrics.failover(gap_ms / 1000)
        self.log.info("failover complete", gap_ms=round(gap_ms, 1), failovers=self.record.failovers)
        return None

    async def _finish(self, reason: EndReason, detail: str | None) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if not self.prepared.done():
            self.prepared.set_exception(SessionGone(detail or reason.value))
        self.record.end_reason = reason.value
        self.record.error = detail
        worker = self.worker
        if worker is not None and worker.state.value != "dead":
            self._set_state(SessionState.LEAVING)
            if worker.booted:
                reply = await self.s.pool.request(worker, Leave(id=self.next_id(), timeout_s=5.0), 8.0)
                if isinstance(reply, Err):
                    self.log.warning("leave failed; retiring the worker", error=reply.message)
                    worker.retire_after_session = True
            await self.s.pool.release(worker)
        self.worker = None
        if self.bot is not None:
            try:
                await self.bot.close()
            except Exception:
                self.log.exception("bot close failed")
        if self.record.room_created and self._room_name:
            try:
                await self.s.rest.delete_room_by_name(self._room_name)
            except DailyAPIError as exc:
                self.log.error("could not delete the room", room=self._room_name, error=str(exc))
                self.record.extra["room_delete_error"] = str(exc)
        final = SessionState.FAILED if reason in FAILURES else SessionState.ENDED
        self._set_state(final, ended_at=time.time())
        self.finished.set()
        # Everything still queued is answered, never dropped.
        while not self.mailbox.empty():
            msg = self.mailbox.get_nowait()
            if isinstance(msg, _Ask) and not msg.future.done():
                msg.future.set_exception(SessionGone(f"session {self.id} has {final.value}"))

    # -- views -------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        self._save_counters()
        r = self.record
        return describe_record(r, participants=[{k: v for k, v in p.items() if k != "raw"}
                                                for p in self.participants.values()],
                               bot_id=self.bot_participant_id)

    def _save_counters(self) -> None:
        worker = self.worker
        if worker is not None:
            self.record.worker_id, self.record.worker_pid = worker.id, worker.pid
            self.record.frames_in = worker.frames_in
        self.record.frames_out = self.frames_out_sent
        self.record.frames_dropped = self.frames_out_dropped


class _Fail(Exception):
    def __init__(self, reason: EndReason, detail: str | None) -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


def describe_record(r: SessionRecord, participants: list[dict[str, Any]] | None = None,
                    bot_id: str | None = None) -> dict[str, Any]:
    """The session as the API and ``ctl`` show it."""
    people = list(participants or [])
    if bot_id:
        people.insert(0, {"id": bot_id, "name": "bot", "is_bot": True})
    return {
        "session_id": r.id,
        "state": r.state,
        "profile": r.profile,
        "kind": r.kind,
        "room_url": r.room_url,
        "room_created": r.room_created,
        "worker_id": r.worker_id,
        "worker_pid": r.worker_pid,
        "participants": people,
        "requested_at": r.requested_at,
        "assigned_at": r.assigned_at,
        "joined_at": r.joined_at,
        "ended_at": r.ended_at,
        "end_reason": r.end_reason,
        "error": r.error,
        "frames": {"in": r.frames_in, "out": r.frames_out, "dropped": r.frames_dropped},
        "failovers": r.failovers,
        "failover_gap_ms": r.failover_gap_ms,
        "max_duration_s": r.max_duration_s,
    }
