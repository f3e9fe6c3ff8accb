"""The session actor's promises, against small fakes of the pool and of Daily's REST API
(no processes, no sockets): whatever is queued to it when it finishes is answered with an
error, never dropped; a stop takes effect at once at every stage and leaves no room behind;
its cancellation is not swallowed; after a failover the bot hears who left and who arrived;
each human is announced once; and dropped frames stay counted."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocol.messages import Command, Join, Leave, Ok, ParticipantJoined
from supervisor.bots import BOT_KINDS, Bot
from supervisor.config import parse
from supervisor.metrics import Metrics
from supervisor.pool import PoolFull, WorkerHandle, WorkerState
from supervisor.sessions.actor import Ask, SessionGone
from supervisor.sessions.requests import PipecatStart, Prepared
from supervisor.sessions.services import Services
from supervisor.sessions.session import Session
from supervisor.sessions.state import EndReason, SessionState
from supervisor.store import SessionRecord, Store
from tests.waiting import wait_until

T = TypeVar("T")

# How long a test waits for what must happen at once: a guard against a hang, not a timing check.
GUARD_S = 10.0


def services(tmp_path: Path, events: list[tuple[str, dict[str, object]]]) -> Services:
    return Services(parse(""), pool=None, rest=None, store=Store(tmp_path / "sessions.db"),  # type: ignore[arg-type]
                    publish=lambda kind, data: events.append((kind, data)))


async def test_asks_queued_when_the_actor_finishes_are_answered_with_session_gone(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    session = Session(services(tmp_path, events), PipecatStart(profile="echo", kind="echo"))
    loop = asyncio.get_running_loop()
    queued = [loop.create_future() for _ in range(3)]
    for fut in queued:
        session.mailbox.put_nowait(Ask(lambda: "never run", fut))
    await session._finish(EndReason.STOPPED, "test")
    for fut in queued:
        with pytest.raises(SessionGone, match="ended"):
            fut.result()
    with pytest.raises(SessionGone):
        await session.ask(lambda: "too late")
    with pytest.raises(SessionGone):
        await session.prepared  # a start call waiting on it is answered too
    assert session.record.state == "ended" and session.record.end_reason == "stopped"
    assert events[-1][1]["state"] == "ended"
    assert Store(tmp_path / "sessions.db").get(session.id).state == "ended"  # the record is written


async def test_a_failure_reason_ends_the_session_as_failed(tmp_path: Path) -> None:
    session = Session(services(tmp_path, []), PipecatStart(profile="echo", kind="echo"))
    await session._finish(EndReason.WORKER_CRASHED, "killed by SIGKILL")
    assert session.record.state == "failed" and session.record.error == "killed by SIGKILL"
    with pytest.raises(SessionGone, match="failed"):
        await session.ask(lambda: None)


async def test_a_start_nobody_waits_for_ends_without_an_unretrieved_error(tmp_path: Path) -> None:
    # The start call's answer is a SessionGone that nobody may ever read (the caller gave up,
    # or the session was started without one): it must not surface as an unhandled error.
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    try:
        session = Session(services(tmp_path, []), PipecatStart(profile="echo", kind="echo"))
        session.mailbox.put_nowait(Ask(lambda: "never run", loop.create_future()))  # its asker gave up too
        await session._finish(EndReason.STOPPED, None)
        del session
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert reported == []


# -- fakes -------------------------------------------------------------------------------------


@dataclass
class FakeRoom:
    url: str
    name: str
    sip_endpoint: str | None = None


class FakeREST:
    """Daily's REST API as a session uses it. A call named in ``hold`` waits until its
    event is set; every call that was cancelled while waiting is recorded."""

    def __init__(self) -> None:
        self.hold: dict[str, asyncio.Event] = {}
        self.calls: list[str] = []
        self.completed: list[str] = []
        self.cancelled: list[str] = []
        self.created: list[str] = []  # the names create_room was asked for
        self.deleted: list[str] = []
        self._tokens = itertools.count(1)

    async def _call(self, name: str) -> None:
        self.calls.append(name)
        gate = self.hold.get(name)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(name)
                raise
        self.completed.append(name)

    async def create_room(self, params: Any) -> FakeRoom:
        self.created.append(params.name)
        await self._call("create_room")
        return FakeRoom(f"https://fake.daily.co/{params.name}", params.name)

    async def get_token(self, room_url: str, *_expiry: Any, owner: bool = True, params: Any = None) -> str:
        await self._call("get_token")
        return f"{'owner' if owner else 'user'}-token-{next(self._tokens)}"

    async def validate_token(self, token: str) -> dict[str, Any]:
        await self._call("validate_token")
        return {}

    async def delete_room_by_name(self, name: str) -> bool:
        await self._call("delete_room")
        self.deleted.append(name)
        return True


class FakePool:
    """The pool as a session uses it. Joins answer with the next of ``join_results`` (the
    call's participants); while ``hold_join`` is set a Join waits for it."""

    def __init__(self) -> None:
        self.accept_audio = True  # False: every send fails, as on back-pressure
        self.requests: list[tuple[WorkerHandle, Command]] = []
        self.cancelled: list[Command] = []
        self.join_results: list[dict[str, Any]] = []
        self.hold_join: asyncio.Event | None = None
        self.spares: list[WorkerHandle] = []  # what acquire hands out (a failover's worker)
        self.busy: list[WorkerHandle] = []
        self.released: list[WorkerHandle] = []
        self._ids = itertools.count(1)

    def acquire(self, session_id: str, listener: Any, lane: str, *, failover: bool = False) -> WorkerHandle:
        if not self.spares:
            raise PoolFull("no spare worker in the fake pool")
        worker = self.spares.pop(0)
        worker.session_id, worker.listener = session_id, listener
        return worker

    def mark_busy(self, worker: WorkerHandle) -> None:
        self.busy.append(worker)

    def release(self, worker: WorkerHandle, calls_done: int | None = None) -> None:
        self.released.append(worker)

    async def request(self, worker: WorkerHandle, cmd: Command, timeout_s: float) -> Ok:
        self.requests.append((worker, cmd))
        if isinstance(cmd, Join):
            result = self.join_results.pop(0) if self.join_results else call_of(f"bot-{worker.id}")
            if self.hold_join is not None:
                try:
                    await self.hold_join.wait()
                except asyncio.CancelledError:
                    self.cancelled.append(cmd)
                    raise
            return Ok(cmd.id, result)
        if isinstance(cmd, Leave):
            return Ok(cmd.id, {"calls_done": 1})
        return Ok(cmd.id)

    def send_audio(self, worker: WorkerHandle, header: bytes, pcm: Any) -> bool:
        return self.accept_audio

    def next_request_id(self) -> int:
        return next(self._ids)

    def sent(self, kind: type[Command]) -> list[tuple[WorkerHandle, Command]]:
        return [(w, c) for w, c in self.requests if isinstance(c, kind)]


def person(pid: str, name: str) -> dict[str, Any]:
    return {"id": pid, "info": {"userName": name, "isLocal": False}}


def call_of(bot_id: str, *others: dict[str, Any]) -> dict[str, Any]:
    """A Join reply's result: the bot as "local", everyone else keyed by id."""
    present = {"local": {"id": bot_id, "info": {"userName": "bot", "isLocal": True}}}
    present.update({p["id"]: p for p in others})
    return {"participants": present}


class RecordingBot(Bot):
    """A bot that writes down every hook the session calls, as (hook, participant id)."""

    kind = "recording"

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.calls: list[tuple[str, str | None]] = []

    async def on_joined(self, join_data: Any) -> None:
        self.calls.append(("joined", None))

    async def on_first_participant_joined(self, participant: dict[str, Any]) -> None:
        self.calls.append(("first", participant.get("id")))

    async def on_participant_joined(self, participant: dict[str, Any]) -> None:
        self.calls.append(("participant_joined", participant.get("id")))

    async def on_participant_left(self, participant: dict[str, Any], reason: str) -> None:
        self.calls.append(("participant_left", participant.get("id")))

    def hooks(self, hook: str) -> list[str | None]:
        return [pid for h, pid in self.calls if h == hook]


def ready_worker(worker_id: str) -> WorkerHandle:
    worker = WorkerHandle(id=worker_id, process=None)
    worker.state, worker.booted = WorkerState.RESERVED, True
    worker.ready.set_result(None)
    return worker


@dataclass
class Harness:
    session: Session
    pool: FakePool
    rest: FakeREST
    store: Store
    metrics: Metrics
    worker: WorkerHandle

    @property
    def bot(self) -> RecordingBot:
        assert isinstance(self.session.bot, RecordingBot)
        return self.session.bot


@dataclass
class Setup:
    failover: bool = False
    end_on_last_leave: bool = True
    worker_ready: bool = True
    hold_rest: set[str] = field(default_factory=set)
    join_results: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def recording_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BOT_KINDS, RecordingBot.kind, RecordingBot)


@pytest.fixture
async def start(tmp_path: Path, recording_bot: None) -> AsyncIterator[Callable[[Setup], Harness]]:
    """Starts sessions of the recording bot on fakes; cancels whatever a failing test left running."""
    started: list[Session] = []

    def _start(setup: Setup) -> Harness:
        # A worker that never boots must not time out before the test's stop: the stop is the subject.
        config = parse(f"[pool]\nstart_timeout_s = 3600.0\n[sessions]\nfailover = {str(setup.failover).lower()}\n")
        pool, rest, metrics = FakePool(), FakeREST(), Metrics()
        pool.join_results = list(setup.join_results)
        rest.hold = {name: asyncio.Event() for name in setup.hold_rest}
        store = Store(tmp_path / f"sessions-{len(started)}.db")
        svc = Services(config, pool, rest, store, lambda kind, data: None, metrics)  # type: ignore[arg-type]
        session = Session(svc, PipecatStart(profile="test", kind=RecordingBot.kind,
                                            end_on_last_leave=setup.end_on_last_leave))
        worker = ready_worker("w1") if setup.worker_ready else WorkerHandle(id="w1", process=None)
        worker.session_id, worker.listener = session.id, session
        session.worker = worker
        session.start()
        started.append(session)
        return Harness(session, pool, rest, store, metrics, worker)

    yield _start
    for session in started:
        if session.task is not None and not session.task.done():
            session.task.cancel()
            await asyncio.wait({session.task}, timeout=GUARD_S)


async def promptly(work: Awaitable[T], what: str) -> T:
    try:
        return await asyncio.wait_for(work, GUARD_S)
    except TimeoutError:
        raise AssertionError(what) from None


async def ended(h: Harness, when: str) -> SessionRecord:
    """The stored record of the session, once it has finished."""
    await promptly(h.session.finished.wait(), f"the session did not end {when}")
    record = h.store.get(h.session.id)
    assert record is not None
    return record


async def joined(h: Harness) -> None:
    await wait_until(lambda: h.session.record.state == SessionState.JOINED, GUARD_S, "the session to join")
    await promptly(h.session.ask(lambda: None), "the joined actor did not answer an ask")  # announcements done


def frames_dropped(metrics: Metrics) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == "callfleet_frames_dropped_total":
                return float(sample.value)
    return None


# -- a stop takes effect at once, at every stage ------------------------------------------------


async def test_a_stop_while_the_room_is_being_created_cancels_the_create_and_deletes_the_room(start: Any) -> None:
    h: Harness = start(Setup(hold_rest={"create_room"}))
    await wait_until(lambda: "create_room" in h.rest.calls, GUARD_S, "the room to be created")
    room = h.rest.created[0]
    h.session.stop(EndReason.STOPPED, "stopped by the test")
    record = await ended(h, "on a stop while the room was being created")
    assert record.end_reason == "stopped" and record.state == "ended"
    assert h.rest.cancelled == ["create_room"] and "create_room" not in h.rest.completed
    assert h.rest.deleted == [room]  # the create may have reached Daily: the room is deleted anyway
    assert h.store.owned_rooms() == []
    with pytest.raises(SessionGone):
        await h.session.prepared  # the start call is answered
    assert h.pool.sent(Join) == [] and h.pool.released == [h.worker]


async def test_a_stop_while_the_worker_boots_ends_the_session_without_a_join(start: Any) -> None:
    h: Harness = start(Setup(worker_ready=False))
    await wait_until(lambda: h.session.record.state == SessionState.ASSIGNED, GUARD_S, "the room to be prepared")
    h.session.stop(EndReason.STOPPED, "stopped by the test")
    record = await ended(h, "on a stop while the worker was booting")
    assert record.end_reason == "stopped"
    h.worker.ready.set_result(None)  # a boot that completes after the stop leads nowhere
    for _ in range(5):
        await asyncio.sleep(0)
    assert h.pool.sent(Join) == [] and h.pool.busy == []
    assert h.pool.released == [h.worker]
    assert h.rest.deleted == h.rest.created and len(h.rest.deleted) == 1
    assert h.store.owned_rooms() == []
    assert isinstance(h.session.prepared.result(), Prepared)


async def test_a_stop_while_the_join_is_pending_cancels_the_join_and_the_worker_is_asked_to_leave(
        start: Any) -> None:
    h: Harness = start(Setup())
    h.pool.hold_join = asyncio.Event()
    await wait_until(lambda: bool(h.pool.sent(Join)), GUARD_S, "the bot to join")
    h.session.stop(EndReason.STOPPED, "stopped by the test")
    record = await ended(h, "on a stop while the Join was pending")
    assert record.end_reason == "stopped"
    assert [c for _, c in h.pool.sent(Join)] == h.pool.cancelled  # the join was given up, never answered
    assert [w for w, _ in h.pool.sent(Leave)] == [h.worker]  # it may have joined: it leaves
    assert h.pool.released == [h.worker]
    assert h.rest.deleted == h.rest.created and len(h.rest.deleted) == 1
    assert h.store.owned_rooms() == []
    assert isinstance(h.session.prepared.result(), Prepared)


async def test_a_stop_during_a_failover_rejoin_cancels_the_rejoin(start: Any) -> None:
    h: Harness = start(Setup(failover=True))
    spare = ready_worker("w2")
    h.pool.spares.append(spare)
    await joined(h)
    h.pool.hold_join = asyncio.Event()
    h.worker.state = WorkerState.DEAD
    h.session.on_worker_gone("killed by SIGKILL")
    await wait_until(lambda: len(h.pool.sent(Join)) == 2, GUARD_S, "the bot to rejoin on the spare worker")
    h.session.stop(EndReason.STOPPED, "stopped by the test")
    record = await ended(h, "on a stop during a failover's rejoin")
    assert record.end_reason == "stopped"
    rejoin = h.pool.sent(Join)[1]
    assert rejoin[0] is spare and h.pool.cancelled == [rejoin[1]]
    assert [w for w, _ in h.pool.sent(Leave)] == [spare] and h.pool.released == [spare]
    assert h.rest.deleted == h.rest.created and len(h.rest.deleted) == 1
    assert h.store.owned_rooms() == []
    assert h.session.prepared.done()


async def test_an_ask_while_the_room_is_being_prepared_is_answered_without_waiting(start: Any) -> None:
    h: Harness = start(Setup(hold_rest={"create_room"}))
    await wait_until(lambda: "create_room" in h.rest.calls, GUARD_S, "the room to be created")
    answer = await promptly(h.session.ask(lambda: "answered"), "the ask waited for the room")
    assert answer == "answered"
    assert "create_room" not in h.rest.completed  # still preparing
    h.session.stop()
    await ended(h, "on a stop after the ask")


async def test_an_ask_whose_coroutine_is_slow_does_not_delay_a_stop(start: Any) -> None:
    h: Harness = start(Setup())
    await joined(h)
    never = asyncio.Event()
    seen: list[str] = []

    async def slow() -> str:
        seen.append("started")
        try:
            await never.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "too late"

    asking = asyncio.ensure_future(h.session.ask(slow))
    await wait_until(lambda: seen == ["started"], GUARD_S, "the ask to run")
    h.session.stop(EndReason.STOPPED, "stopped by the test")
    record = await ended(h, "on a stop while an ask's coroutine was running")
    assert record.end_reason == "stopped"
    with pytest.raises(SessionGone):
        await promptly(asking, "the asker was never answered")
    assert seen == ["started", "cancelled"]


# -- cancellation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["joined", "creating the room"])
async def test_cancelling_the_actor_ends_its_task_cancelled_and_the_record_drained(start: Any, stage: str) -> None:
    h: Harness = start(Setup(hold_rest={"create_room"} if stage == "creating the room" else set()))
    if stage == "joined":
        await joined(h)
    else:
        await wait_until(lambda: "create_room" in h.rest.calls, GUARD_S, "the room to be created")
    task = h.session.task
    assert task is not None
    task.cancel()
    await promptly(asyncio.wait({task}), "the cancelled actor did not end")
    assert task.cancelled(), "the actor swallowed its cancellation"  # whoever cancelled it must learn so
    record = h.store.get(h.session.id)
    assert record is not None and record.state.finished and record.end_reason == "drained"
    assert h.rest.deleted == h.rest.created and h.store.owned_rooms() == []


# -- participants after a failover, and announced once ----------------------------------------------


async def test_after_a_failover_the_bot_hears_who_left_and_who_arrived_during_the_gap(start: Any) -> None:
    alice, bob, carol = person("h1", "alice"), person("h2", "bob"), person("h3", "carol")
    lingering_bot = person("bot-1", "bot")  # the killed worker's participant, still in the room
    h: Harness = start(Setup(failover=True, join_results=[call_of("bot-1", alice, bob),
                                                          call_of("bot-2", lingering_bot, bob, carol)]))
    h.pool.spares.append(ready_worker("w2"))
    await joined(h)
    h.worker.state = WorkerState.DEAD
    h.session.on_worker_gone("killed by SIGKILL")
    await wait_until(lambda: h.session.record.failovers == 1, GUARD_S, "the failover to complete")
    await promptly(h.session.ask(lambda: None), "the actor did not answer after the failover")
    assert h.bot.hooks("participant_left") == ["h1"]  # alice left during the gap
    assert h.bot.hooks("participant_joined") == ["h1", "h2", "h3"]  # carol announced; bob not again
    assert h.bot.hooks("first") == ["h1"]
    humans = {p["id"] for p in h.session.describe()["participants"] if not p["is_bot"]}
    assert humans == {"h2", "h3"}  # the lingering bot-1 is not a human
    assert not h.session.finished.is_set()


async def test_after_a_failover_the_session_ends_when_every_human_left_during_the_gap(start: Any) -> None:
    alice, lingering_bot = person("h1", "alice"), person("bot-1", "bot")
    h: Harness = start(Setup(failover=True, join_results=[call_of("bot-1", alice),
                                                          call_of("bot-2", lingering_bot)]))
    h.pool.spares.append(ready_worker("w2"))
    await joined(h)
    h.worker.state = WorkerState.DEAD
    h.session.on_worker_gone("killed by SIGKILL")
    record = await ended(h, "when the last human left during the failover (end_on_last_leave)")
    assert record.end_reason == "participant_left" and record.failovers == 1
    assert h.bot.hooks("participant_left") == ["h1"]
    assert "bot-1" not in h.bot.hooks("participant_joined")


async def test_each_human_is_announced_once_though_the_join_lists_them_and_a_join_event_repeats_them(
        start: Any) -> None:
    alice, bob = person("h1", "alice"), person("h2", "bob")
    h: Harness = start(Setup(join_results=[call_of("bot-1", alice)]))
    await joined(h)
    for participant in (alice, bob, bob):
        h.session.on_worker_event(ParticipantJoined(participant=participant))
    await promptly(h.session.ask(lambda: None), "the actor did not answer")  # the events are handled first
    assert h.bot.hooks("participant_joined") == ["h1", "h2"]
    assert h.bot.hooks("first") == ["h1"]


# -- dropped frames --------------------------------------------------------------------------------


async def test_dropped_frames_are_counted_and_the_count_stays_when_the_session_ends(start: Any) -> None:
    h: Harness = start(Setup())
    await joined(h)
    ctx = h.bot.ctx
    h.pool.accept_audio = False  # back-pressure: the sends fail
    assert not ctx.send_audio(b"\0" * 640, 16000, 1)
    assert not ctx.send_audio(b"\0" * 640, 16000, 1)
    assert frames_dropped(h.metrics) == 2
    h.session.stop()
    await ended(h, "on a stop after dropping frames")
    assert frames_dropped(h.metrics) == 2  # the session's end takes nothing off
    assert not ctx.send_audio(b"\0" * 640, 16000, 1)  # a late send: no worker any more
    assert frames_dropped(h.metrics) == 3
