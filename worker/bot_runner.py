"""Running a hosted bot in the worker: ``await bot(runner_args)``, as Pipecat Cloud does.

``RunBot`` gives the bot Pipecat's own ``DailyRunnerArguments`` (the room, the bot's
token, the request ``body`` and the ``session_id``) and a ``DAILY_API_KEY`` /
``DAILY_API_URL`` that point at the supervisor's per-session Daily proxy, never at the
account. The reply waits for the bot's transport to join (it reports the join's data, as
a ``Join`` does) or for the bot to end first. A phone call (``RunBot.websocket``) gives it
``WebSocketRunnerArguments`` instead, over the call's relayed WebSocket
(``worker.phone_socket``), and its "join" is the bot's transport reading the call. A browser's
WebRTC offer (``RunBot.webrtc``) is answered here by Pipecat's ``SmallWebRTCConnection``
(``worker.webrtc_call``) and the bot gets ``SmallWebRTCRunnerArguments``; its "join" is the
answer, which the reply carries. When ``bot()`` returns or raises later, a
``BotFinished`` says so. A stop from the supervisor cancels the bot's task -- what Pipecat
Cloud does at its session limit -- and Pipecat's transport leaves on its way out.

Every pipeline the bot builds is measured (``worker.pipeline_hooks``): its turn figures go
to the supervisor as ``TurnFigures`` and, with an OTLP endpoint, its spans to the collector,
the last of both sent before its end is reported.

Pipecat logs with loguru: its lines are routed into the worker's structlog stream, with
``session_id`` and ``worker_id`` bound like every other line.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from callfleet import scrub
from protocol.messages import BotFinished, Err, ErrCode, Ok, RunBot, SocketBytes, SocketClose, SocketText, WebSocketCall
from worker import hosted_daily, telephony_api
from worker.bot_loader import BotLoadError, is_loaded, load_bot
from worker.call import CallHost
from worker.daily_bots import handlers, keys
from worker.phone_socket import RelayedSocket, SocketUnavailable
from worker.sdk_threads import CommandFailed
from worker.webrtc_call import OfferRefused, WebRTCPeer

if TYPE_CHECKING:  # imported with Pipecat, by a worker that hosts a Pipecat bot: never by an echo worker's boot
    from worker.turn_metrics import FigureShipper

log = structlog.get_logger("worker.bot")

CANCEL_TIMEOUT_S = 5.0  # for the bot's task to unwind (its transport leaves) after a stop
_LOGURU_LEVELS = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "SUCCESS": "info", "WARNING": "warning",
                  "ERROR": "error", "CRITICAL": "critical"}


class BotRunner:
    def __init__(self, host: CallHost, emit: Callable[[msgspec.Struct], None]) -> None:
        self.host = host
        self.emit = emit
        self.task: asyncio.Task[None] | None = None
        self.socket: RelayedSocket | None = None  # a phone call's WebSocket, while its bot runs
        self._taken: RelayedSocket | None = None  # a phone call the bot took, until the supervisor's Leave
        self.webrtc = WebRTCPeer(emit)  # a browser's peer, when a session is a WebRTC one
        self._webrtc_taken = False  # a WebRTC call the bot took, until the supervisor's Leave
        self._closing: asyncio.Task[None] | None = None  # the peer's close once its bot ended
        self._socket_error: str | None = None
        self._cancelled = False
        self._outcome: str | None = None  # how a bot that raised failed: one line, scrubbed
        self._secrets: tuple[str, ...] = ()  # what this session was given: scrubbed from logs and errors
        self._env: dict[str, str] = {}  # what this session's bot was given in os.environ
        self._figures: FigureShipper | None = None  # the session's turn figures, to the supervisor
        self._tracing = False  # the session's pipelines export Pipecat's traces

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def open_socket(self, call: WebSocketCall) -> None:
        """A RunBot for a phone call arrived: its socket exists from now on, since the call's
        first messages follow the RunBot at once (on the loop, synchronously)."""
        if self.running:
            return  # run() refuses the second call
        self._socket_error = None
        try:
            self.socket = RelayedSocket(call, self.emit)
        except SocketUnavailable as exc:
            self.socket, self._socket_error = None, str(exc)
            self.emit(SocketClose(socket=call.socket, code=1011, reason="the bot cannot take phone calls here"))

    def socket_message(self, msg: SocketText | SocketBytes | SocketClose) -> None:
        """One relayed message of the phone call; one for another socket (a call this worker
        hosted before) is dropped."""
        socket = self.socket
        if socket is not None and msg.socket == socket.id:
            socket.feed(msg)

    async def run(self, cmd: RunBot) -> Ok | Err:
        """Start the bot; answer once its transport joined, or it ended before that."""
        if self.running or self.host.joined:
            return Err(cmd.id, ErrCode.ALREADY_JOINED, "this worker is already hosting a call")
        preloaded = is_loaded(cmd.bot)  # the forkserver imported it: this worker imports nothing
        try:
            fn = load_bot(cmd.bot)
        except BotLoadError as exc:  # the bot's fault, as a bot that raises is: the session ends bot_error
            return Err(cmd.id, ErrCode.BOT_ERROR, f"the bot could not be loaded: {scrub.one_line(str(exc))}")
        if cmd.websocket is not None and (self.socket is None or self.socket.id != cmd.websocket.socket):
            return Err(cmd.id, ErrCode.BOT_ERROR, self._socket_error or "the phone call's socket is not open")
        connection: Any = None
        if cmd.webrtc is not None:
            try:
                connection = await self.webrtc.open(cmd.webrtc)
            except OfferRefused as exc:  # nothing started: the session may offer again
                return Err(cmd.id, ErrCode.BAD_REQUEST, str(exc))
        from pipecat.runner.types import DailyRunnerArguments, SmallWebRTCRunnerArguments, WebSocketRunnerArguments

        # The bot's environment for this session: its profile's secrets and env, and the
        # session's key for the supervisor's Daily proxy. Taken away when the bot ends, so a
        # worker's next session (sessions_per_worker > 1) starts from the clean allowlist.
        self._env = {**cmd.env, "DAILY_API_KEY": cmd.api_key, "DAILY_API_URL": cmd.api_url}
        os.environ.update(self._env)
        scrub.forget(self._secrets)  # the previous session's (a worker hosts one at a time)
        self._secrets = scrub.register(cmd.token, cmd.api_key, *cmd.env.values(), *cmd.provider_keys.values(),
                                       *scrub.secrets_in(cmd.body))
        args: Any
        socket = self.socket if cmd.websocket is not None else None
        if socket is not None:
            await socket.accept()  # as a FastAPI endpoint does before it hands the socket on
            args = WebSocketRunnerArguments(websocket=socket.websocket, body=cmd.body, session_id=cmd.session_id)
            joined: asyncio.Future[Any] = socket.first_read
        elif connection is not None:
            args = SmallWebRTCRunnerArguments(webrtc_connection=connection, body=cmd.body, session_id=cmd.session_id)
            joined = asyncio.get_running_loop().create_future()
            joined.set_result(self.webrtc.answer())  # the browser connects once it has the answer
        else:
            args = DailyRunnerArguments(room_url=cmd.room_url, token=cmd.token, body=cmd.body,
                                        session_id=cmd.session_id)
            joined = self.host.expect_bot_join()
        route_loguru()
        structlog.contextvars.bind_contextvars(session_id=cmd.session_id)  # the bot's task inherits it
        self._cancelled = False
        # A Daily Bots pipeline's keys and function handlers: in its task's context only.
        context = handlers.session_context(keys.session_context(cmd.provider_keys), cmd.functions,
                                           cmd.client_function_timeout_s)
        if cmd.websocket is not None:
            telephony_api.set_for_session(context, cmd.websocket.api_urls)
        self._measure(cmd, context)
        self.task = asyncio.get_running_loop().create_task(self._call(fn, args), name=f"bot-{cmd.session_id}",
                                                           context=context)
        self.task.add_done_callback(self._clear_env)
        if socket is not None:
            self.task.add_done_callback(lambda _t: self._phone_call_over(socket))
        if connection is not None:
            self._webrtc_taken = True
            self.task.add_done_callback(self._webrtc_call_over)
        log.info("bot started", bot=cmd.bot, preloaded=preloaded)
        try:
            await asyncio.wait({joined, self.task}, timeout=cmd.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self.cancel()
            raise
        if joined.done():
            try:
                if socket is not None:
                    self._taken = socket
                    return Ok(cmd.id, {})
                return Ok(cmd.id, joined.result())
            except CommandFailed as exc:
                return Err(cmd.id, exc.code, f"the bot's transport could not join: {exc.message}")
        joined.cancel()
        if self.task.done():
            error = self._outcome
            if error:
                return Err(cmd.id, ErrCode.BOT_ERROR, f"bot() raised before joining: {error}")
            return Err(cmd.id, ErrCode.BOT_FINISHED, "bot() returned before its transport joined")
        await self.cancel()
        return Err(cmd.id, ErrCode.TIMEOUT, f"the bot's transport did not join within {cmd.timeout_s:g}s")

    async def _call(self, fn: Callable[[Any], Any], args: Any) -> None:
        self._outcome = None
        try:
            await self._hosted(fn, args)
        except asyncio.CancelledError:
            if not self._cancelled:
                self._report("the bot's task was cancelled from inside")
            raise
        except BaseException as exc:  # a bot may raise anything; it ends the session, not the worker
            # The supervisor (and so the API) gets one line; the traceback stays in the log.
            summary = scrub.exception_line(exc)
            log.error("bot raised", error=summary, traceback="".join(traceback.format_exception(exc)))
            self._report(summary)
            return
        log.info("bot returned")
        self._report(None)

    def _measure(self, cmd: RunBot, context: Any) -> None:
        """The session's pipelines, whoever builds them, get a turn figure observer and, with an
        OTLP endpoint, Pipecat's tracing (``worker.pipeline_hooks``); its audio is counted
        from zero (``worker.hosted_daily``)."""
        # Imported here, not at the top: they import Pipecat, which a worker hosting a
        # built-in bot never needs (a Pipecat worker's forkserver preloads them:
        # worker.pipecat_preload), and the OTLP exporter's set-up only with an endpoint.
        from worker import pipeline_hooks
        from worker.turn_metrics import FigureBook, FigureShipper

        hosted_daily.audio.reset()
        book = FigureBook()
        self._figures = FigureShipper(book, self.emit)
        self._tracing = False
        if cmd.otlp_endpoint:
            from worker import tracing

            self._tracing = tracing.enable(cmd.otlp_endpoint, cmd.otlp_service_name or "callfleet")
        pipeline_hooks.install()
        pipeline_hooks.set_for_session(context, pipeline_hooks.SessionHooks(cmd.session_id, book, self._tracing))

    async def _hosted(self, fn: Callable[[Any], Any], args: Any) -> None:
        """``bot(runner_args)``; then, however it ended, its last figures and spans are sent
        before its end is reported."""
        try:
            await fn(args)
        finally:
            if self._figures is not None:
                self._figures.close()
                self._figures = None
            if self._tracing:
                from worker import tracing

                await tracing.flush()

    def _phone_call_over(self, socket: RelayedSocket) -> None:
        # The bot is done with its call: the socket closes if it left it open.
        socket.finish()
        if self.socket is socket:
            self.socket = None

    def _webrtc_call_over(self, _task: object) -> None:
        # The bot is done with its peer: the browser is told and the connection closed.
        self._closing = asyncio.get_running_loop().create_task(self.webrtc.close())

    def call_left(self) -> None:
        """The supervisor's Leave, once the bot is cancelled: a phone call the bot took
        counts towards ``sessions_per_worker`` now, as a Daily call does once left (so the
        worker answers the Leave before it retires)."""
        if self._taken is not None:
            self._taken = None
            self.host.phone_call_over()
        if self._webrtc_taken:
            self._webrtc_taken = False
            self.host.phone_call_over()

    def _clear_env(self, _task: object) -> None:
        for name in self._env:
            os.environ.pop(name, None)
        self._env = {}

    def _report(self, error: str | None) -> None:
        if self._cancelled:
            return
        self._outcome = error
        self.emit(BotFinished(error=error))

    async def finished(self, timeout_s: float) -> None:
        """Wait (bounded) for the bot to return or raise by itself."""
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task}, timeout=timeout_s)

    async def cancel(self) -> None:
        """Cancel the bot's task (a stop, max duration, idle or drain) and let it unwind."""
        task = self.task
        if task is None or task.done():
            return
        self._cancelled = True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CANCEL_TIMEOUT_S)
        if not done:
            log.warning("the bot did not unwind after cancel", timeout_s=CANCEL_TIMEOUT_S)


_routed = False


def route_loguru() -> None:
    """Pipecat's loguru lines become structlog lines (JSON off a TTY, context bound)."""
    global _routed
    if _routed:
        return
    _routed = True
    from loguru import logger

    pipecat_log = structlog.get_logger("pipecat")

    def sink(message: Any) -> None:
        record = message.record
        level = _LOGURU_LEVELS.get(record["level"].name, "info")
        getattr(pipecat_log, level)(record["message"], source=f"{record['name']}:{record['line']}")

    logger.remove()
    logger.add(sink, level="DEBUG" if os.environ.get("CALLFLEET_LOG_LEVEL", "").lower() == "debug" else "INFO",
               format="{message}")
