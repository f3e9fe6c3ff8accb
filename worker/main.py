"""The worker process: one DEALER to the supervisor, one call client, one asyncio loop.

Life of a worker: connect, say ``Hello``, wait for ``Welcome``, then answer pings and carry
out commands until ``Shutdown``, until it has hosted ``sessions_per_worker`` calls, or until
it decides the supervisor is gone (no message for ``ping_timeout_s``, parent died). On the
way out it leaves the call (bounded), releases the client, deinitialises the SDK and exits
with a code from ``protocol.ExitCode`` so the pool can tell a crash loop from a normal end.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import msgspec
import structlog
import zmq

from callfleet import logs
from protocol import PROTOCOL_VERSION
from protocol.audio import AudioOut
from protocol.messages import (
    Command,
    Err,
    ErrCode,
    Event,
    ExitCode,
    Exiting,
    Hello,
    Join,
    Leave,
    Ok,
    Ping,
    Pong,
    Reject,
    RunBot,
    Shutdown,
    SocketBytes,
    SocketClose,
    SocketText,
    WebRTCCandidates,
    WebRTCOffer,
    Welcome,
)
from protocol.transport import BadFrame, BadFrameLog, Channel, PeerUnreachable, Received, connect_dealer
from worker import hosted_daily
from worker.backends import init_sdk, load_backend, sdk_version
from worker.bot_runner import BotRunner
from worker.call import CallHost, capabilities
from worker.liveness import ParentWatch, set_parent_death_signal
from worker.log_shipping import LogShipper

log = structlog.get_logger("worker")

LEAVE_ON_EXIT_TIMEOUT_S = 5.0
BOT_EXIT_WAIT_S = 5.0  # for a hosted bot to return after its transport left the call
RELEASE_TIMEOUT_S = 5.0
WATCH_INTERVAL_S = 1.0  # a fallback: the kernel's parent-death signal most often ends an orphan at once

@dataclass(frozen=True)
class WorkerOptions:
    """Everything a worker needs to start; passed on the command line or by forkserver."""

    connect: str  # the supervisor's ROUTER endpoint, e.g. ipc:///run/callfleet/workers.sock
    worker_id: str
    identity: str = ""  # the routing id the supervisor expects (its id and a secret); default worker_id
    backend: str = "sandbox"
    supervisor_pid: int | None = None
    handshake_timeout_s: float = 10.0
    log_level: str | None = None


class Worker:
    def __init__(self, opts: WorkerOptions, backend: ModuleType) -> None:
        self.opts = opts
        self.backend = backend
        self.loop = asyncio.get_running_loop()
        self.ctx = zmq.Context()
        self.channel = Channel(connect_dealer(self.ctx, opts.connect, opts.identity or opts.worker_id), routed=False)
        self.outbox: asyncio.Queue[msgspec.Struct] = asyncio.Queue()
        self.bad_frames = BadFrameLog()
        self.stopping = asyncio.Event()
        self.exit_code = ExitCode.OK
        self.exit_reason = ""
        self.last_heard = time.monotonic()
        self.ping_timeout_s = opts.handshake_timeout_s
        self.sessions_per_worker = 0
        self.audio_sent = 0
        self.audio_dropped = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.released = False
        self.welcomed = False
        self.host = CallHost(
            backend, self.loop, emit_event=self._emit_event, emit_audio=self._emit_audio
        )
        self.host.on_call_ended = self._call_ended
        hosted_daily.attach(self.host)  # a hosted bot's CallClient(...) is this host's client
        self.bots = BotRunner(self.host, self.outbox.put_nowait)
        self.log_shipper = LogShipper(self.outbox.put_nowait, self.outbox.qsize)

    # -- outgoing ---------------------------------------------------------------------------

    def _emit_event(self, event: Event) -> None:
        self.outbox.put_nowait(event)

    def _emit_audio(self, header: bytes, pcm: bytes) -> None:
        if self.channel.send_audio(header, pcm):
            self.audio_sent += 1
        else:
            self.audio_dropped += 1

    async def _sender(self) -> None:
        # One sender keeps control messages in order; it never drops one.
        while True:
            msg = await self.outbox.get()
            while True:
                try:
                    await self.channel.send_control(msg)
                    break
                except PeerUnreachable as exc:
                    log.warning("supervisor not draining its socket", error=str(exc))
            self.outbox.task_done()

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, code: ExitCode, reason: str) -> None:
        if not self.stopping.is_set():
            self.exit_code, self.exit_reason = code, reason
            self.stopping.set()

    def _call_ended(self) -> None:
        n = self.sessions_per_worker
        if n and self.host.calls_finished >= n:
            reason = f"hosted {n} call(s) (sessions_per_worker)"
            if self.bots.running:
                # A hosted bot whose transport left is on its way out of bot(): let it
                # finish, so the supervisor hears how it ended, then exit.
                self._spawn(self._stop_after_bot(reason))
            else:
                self.stop(ExitCode.OK, reason)

    async def _stop_after_bot(self, reason: str) -> None:
        await self.bots.finished(BOT_EXIT_WAIT_S)
        self.stop(ExitCode.OK, reason)

    async def handshake(self) -> bool:
        hello = Hello(
            worker_id=self.opts.worker_id,
            pid=os.getpid(),
            protocol_version=PROTOCOL_VERSION,
            backend=self.opts.backend,
            capabilities=capabilities(self.backend),
            sdk_version=sdk_version(self.backend),
        )
        self.outbox.put_nowait(hello)
        deadline = time.monotonic() + self.opts.handshake_timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got = await asyncio.wait_for(self.channel.recv(), remaining)
            except TimeoutError:
                break
            except BadFrame as exc:
                self._bad_frame(exc)
                continue
            msg = got.message
            if isinstance(msg, Welcome):
                self.ping_timeout_s = msg.ping_timeout_s
                self.sessions_per_worker = msg.sessions_per_worker
                self.welcomed = True
                self.last_heard = time.monotonic()
                log.info("welcomed", ping_timeout_s=msg.ping_timeout_s)
                return True
            if isinstance(msg, Reject):
                self.stop(ExitCode.REJECTED, f"rejected by supervisor: {msg.reason}")
                return False
            if isinstance(msg, Ping):
                self._pong(msg)
        self.stop(ExitCode.BOOT_FAILED, "no Welcome from the supervisor in time")
        return False

    def _pong(self, ping: Ping) -> None:
        self.outbox.put_nowait(
            Pong(
                seq=ping.seq,
                sent_at=ping.sent_at,
                answered_at=time.time(),
                frames_in=self.host.frames_in,
                frames_out=self.host.frames_out,
                frames_dropped=self.host.frames_dropped + self.audio_dropped,
                bot_frames_in=hosted_daily.audio.frames_in,
                bot_frames_out=hosted_daily.audio.frames_out,
            )
        )

    def _bad_frame(self, exc: BadFrame) -> None:
        if self.bad_frames.record(exc.peer):
            log.warning("dropped undecodable frame", error=str(exc), total=self.bad_frames.total)

    def _received(self, got: Received) -> None:
        """Every message from the supervisor once welcomed, synchronously as the channel
        drains the socket."""
        self.last_heard = time.monotonic()
        msg = got.message
        if got.pcm is not None:
            if isinstance(msg, AudioOut):
                self.host.write_audio(got.pcm.bytes)
            return
        if isinstance(msg, Ping):
            self._pong(msg)
        elif isinstance(msg, Command):
            self._spawn(self._run_command(msg))
        elif isinstance(msg, RunBot):
            if msg.websocket is not None:
                self.bots.open_socket(msg.websocket)  # the call's messages follow at once
            self._spawn(self._run_bot(msg))
        elif isinstance(msg, (SocketText, SocketBytes, SocketClose)):
            self.bots.socket_message(msg)
        elif isinstance(msg, (WebRTCOffer, WebRTCCandidates)):
            self._spawn(self._webrtc_signal(msg))
        elif isinstance(msg, Shutdown):
            self.stop(ExitCode.OK, f"shutdown: {msg.reason}")
        else:
            log.warning("unexpected message", type=type(msg).__name__)

    def _bad_frame_after_welcome(self, exc: BadFrame) -> None:
        self.last_heard = time.monotonic()
        self._bad_frame(exc)

    async def _run_bot(self, cmd: RunBot) -> None:
        try:
            reply: Ok | Err = await self.bots.run(cmd)
        except asyncio.CancelledError:
            reply = Err(cmd.id, ErrCode.EXITING, f"worker exiting: {self.exit_reason}")
        self.outbox.put_nowait(reply)

    async def _webrtc_signal(self, msg: WebRTCOffer | WebRTCCandidates) -> None:
        """A browser's renegotiation or trickled ICE candidates, for the peer its bot runs on."""
        peer = self.bots.webrtc
        try:
            reply = await (peer.renegotiate(msg) if isinstance(msg, WebRTCOffer) else peer.add_candidates(msg))
        except asyncio.CancelledError:
            reply = Err(msg.id, ErrCode.EXITING, f"worker exiting: {self.exit_reason}")
        self.outbox.put_nowait(reply)

    async def _run_command(self, cmd: Command) -> None:
        try:
            if isinstance(cmd, Leave):
                await self.bots.cancel()  # a hosted bot is cancelled first; its transport leaves
                self.bots.call_left()
            reply: Ok | Err = await self.host.execute(cmd)
        except asyncio.CancelledError:
            # Every request gets exactly one reply, even when the worker exits under it.
            reply = Err(cmd.id, ErrCode.EXITING, f"worker exiting: {self.exit_reason}")
        if isinstance(cmd, Join) and isinstance(reply, Ok):
            log.info("joined the call", room_url=cmd.meeting_url)
        elif isinstance(cmd, Leave):
            log.info("left the call", ok=isinstance(reply, Ok))
            self.log_shipper.flush()  # the session's last lines go before the reply that ends it
        self.outbox.put_nowait(reply)

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watchdog(self, watch: ParentWatch) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            lost = watch.lost()
            if lost:
                self.stop(ExitCode.SUPERVISOR_LOST, lost)
            silent = time.monotonic() - self.last_heard
            if self.welcomed and silent > self.ping_timeout_s:
                self.stop(
                    ExitCode.SUPERVISOR_LOST,
                    f"no message from the supervisor for {silent:.1f}s",
                )

    async def run(self) -> ExitCode:
        sender = self.loop.create_task(self._sender())
        watchdog = self.loop.create_task(self._watchdog(ParentWatch(self.opts.supervisor_pid)))
        try:
            handshake = self.loop.create_task(self.handshake())
            stop_wait = self.loop.create_task(self.stopping.wait())
            await asyncio.wait({handshake, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if handshake.done() and handshake.result() and not self.stopping.is_set():
                self.channel.handle(self._received, self._bad_frame_after_welcome)
                logs.set_line_tap(self.log_shipper.take)  # each session's lines to the supervisor too
                shipping = self.loop.create_task(self.log_shipper.run())
                await self.stopping.wait()
                shipping.cancel()
            handshake.cancel()
            stop_wait.cancel()
        finally:
            watchdog.cancel()
            await self._teardown(sender)
        return self.exit_code

    async def _teardown(self, sender: asyncio.Task[None]) -> None:
        log.info("exiting", reason=self.exit_reason, code=int(self.exit_code))
        if self.tasks:
            # Commands already under way get a moment to answer before they are cut off.
            await asyncio.wait(set(self.tasks), timeout=1.0)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0)
        await self.bots.cancel()
        try:
            await self.host.leave(LEAVE_ON_EXIT_TIMEOUT_S)
        except Exception as exc:
            log.warning("leave on exit failed", error=str(exc))
        logs.set_line_tap(None)
        self.log_shipper.flush()
        self.outbox.put_nowait(Exiting(reason=self.exit_reason, exit_code=int(self.exit_code)))
        try:
            await asyncio.wait_for(self.outbox.join(), 1.0)
        except TimeoutError:
            pass
        sender.cancel()
        self.channel.close(linger_ms=500)
        self.ctx.term()
        # release() can block inside the SDK (seen after a join that never completed);
        # bounded here, and when it hangs the process exits without deinit.
        release = _in_daemon_thread(self.loop, self.host.release)
        try:
            await asyncio.wait_for(asyncio.shield(release), RELEASE_TIMEOUT_S)
            self.released = True
        except TimeoutError:
            log.error("release did not return; exiting without deinit", timeout_s=RELEASE_TIMEOUT_S)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _in_daemon_thread(loop: asyncio.AbstractEventLoop, fn: Any) -> asyncio.Future[Any]:
    """Run a blocking call on a daemon thread (not the loop's executor, whose shutdown
    would wait forever for a call stuck in native code)."""
    fut: asyncio.Future[Any] = loop.create_future()

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting side
            loop.call_soon_threadsafe(_settle, fut, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, fut, result, None)

    threading.Thread(target=target, name="sdk-release", daemon=True).start()
    return fut


async def serve(opts: WorkerOptions) -> int:
    """Run one worker until it stops; returns its exit code."""
    logs.configure(opts.log_level)
    structlog.contextvars.bind_contextvars(worker_id=opts.worker_id)
    set_parent_death_signal(signal.SIGTERM)
    try:
        backend = load_backend(opts.backend)
        init_sdk(backend)
    except Exception as exc:  # BackendError, or whatever the SDK's init raises
        log.error("cannot boot", error=str(exc))
        return ExitCode.BOOT_FAILED
    if "pipecat.pipeline.worker" in sys.modules:  # a Pipecat lane's worker: preloaded, never yet run
        from worker.pipecat_warmup import warm_up

        await warm_up()
    worker = Worker(opts, backend)
    loop = asyncio.get_running_loop()
    # SIGTERM (also the parent-death signal) ends the worker; SIGINT is ignored because a
    # Ctrl-C in the operator's terminal reaches the whole process group, and it is the
    # supervisor's to turn into a drain that ends each session properly.
    loop.add_signal_handler(signal.SIGTERM, worker.stop, ExitCode.SUPERVISOR_LOST, "signal SIGTERM")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = await worker.run()
    released = worker.released
    del worker
    gc.collect()
    # deinit only after every client and custom track is gone (panic at exit otherwise).
    if released:
        try:
            backend.Daily.deinit()
        except Exception as exc:
            log.warning("deinit failed", error=str(exc))
    return int(code)


def run_options(**kwargs: Any) -> None:
    """``run`` from plain keyword arguments (what the pool's forkserver passes)."""
    run(WorkerOptions(**kwargs))


def run(opts: WorkerOptions) -> None:
    """Process entry point (also what the pool's forkserver calls). Never returns."""
    try:
        import uvloop

        code = uvloop.run(serve(opts))
    except Exception:
        log.exception("worker crashed")
        code = ExitCode.CRASHED
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalisation: native SDK threads are gone, nothing left to flush.
    os._exit(code)
