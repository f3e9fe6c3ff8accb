"""The bench's peer: a Pipecat bot hosted the way Pipecat's development runner hosts it.

    python -m bench.peer --bot examples/pipecat_echo.py:bot --port 7999
    (DAILY_API_URL and DAILY_API_KEY in the environment, as for the runner)

One process, one asyncio loop; every session is ``bot(runner_args)`` started as a task,
as ``pipecat.runner.run`` does. ``sys.modules["daily"]`` is the sandbox client, set before
Pipecat is imported, so each bot's DailyTransport makes its own ``CallClient`` in this
process, exactly as on daily-python. The runner itself needs FastAPI; this is its
``POST /start`` for the Daily transport on aiohttp: it creates the room and token with
Pipecat's own ``pipecat.runner.daily.configure`` (through the sandbox's REST API), starts
the bot's task and answers ``{dailyRoom, dailyToken, sessionId}``.

For the bench only, beside ``/start``: ``GET /sessions/{id}`` says when the bot's transport
joined (``DailyTransport._on_joined`` is wrapped to note the time; nothing else of Pipecat
is touched) and whether its task still runs; ``DELETE /sessions/{id}`` cancels the task
(the runner has no stop; a lone start has no caller to leave). It prints one line when it
listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

import sandbox.client

sys.modules["daily"] = sandbox.client  # before Pipecat binds ``from daily import ...``

from aiohttp import ClientSession, web  # noqa: E402


class SessionView(msgspec.Struct, frozen=True):
    """What ``GET /sessions/{id}`` answers."""

    session_id: str
    room_url: str
    joined_at: float | None  # epoch seconds when the bot's transport joined
    running: bool
    error: str | None


class PeerSession(msgspec.Struct):
    session_id: str
    room_url: str
    task: asyncio.Task[None] | None = None
    error: str | None = None

    def view(self, joined_at: float | None) -> SessionView:
        return SessionView(self.session_id, self.room_url, joined_at,
                           self.task is not None and not self.task.done(), self.error)


def load_bot(spec: str) -> Callable[[Any], Awaitable[None]]:
    """``path/to/bot.py:function`` (or ``module:function``) → the function; raises
    ``ImportError`` or ``AttributeError`` as importing it does."""
    target, _, name = spec.partition(":")
    if target.endswith(".py"):
        path = Path(target).resolve()
        module_spec = importlib.util.spec_from_file_location(f"bench_peer_bot_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn: Callable[[Any], Awaitable[None]] = getattr(module, name or "bot")
    return fn


class StarletteBridge:
    """An aiohttp WebSocket as the Starlette ``WebSocket`` FastAPI would hand the bot: the
    ASGI events it reads and writes mapped onto the socket (the runner serves /ws with
    uvicorn; this stands in for it where uvicorn is not installed)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        from starlette.websockets import WebSocket

        self.ws = ws
        self._connected = False
        scope = {"type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "scheme": "ws", "path": request.path, "raw_path": request.path.encode(), "root_path": "",
                 "query_string": request.query_string.encode(), "server": ("127.0.0.1", None),
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.items()],
                 "client": None, "subprotocols": [], "state": {}, "extensions": {}}
        self.websocket = WebSocket(scope, self._receive, self._send)

    async def _receive(self) -> dict[str, Any]:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        from aiohttp import WSMsgType

        message = await self.ws.receive()
        if message.type is WSMsgType.TEXT:
            return {"type": "websocket.receive", "text": message.data}
        if message.type is WSMsgType.BINARY:
            return {"type": "websocket.receive", "bytes": message.data}
        return {"type": "websocket.disconnect", "code": self.ws.close_code or 1000, "reason": ""}

    async def _send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            return
        if kind == "websocket.close":
            await self.ws.close(code=int(message.get("code") or 1000))
            return
        if self.ws.closed:
            raise OSError("the call's WebSocket is closed")
        if message.get("text") is not None:
            await self.ws.send_str(message["text"])
        else:
            await self.ws.send_bytes(bytes(message.get("bytes") or b""))


class Peer:
    """The runner's session table, and the join times the wrapped transport notes."""

    def __init__(self, bot: Callable[[Any], Awaitable[None]]) -> None:
        self.bot = bot
        self.sessions: dict[str, PeerSession] = {}
        self.joined_at: dict[str, float] = {}  # room URL -> first join
        self.tasks: set[asyncio.Task[None]] = set()  # the runner holds its tasks the same way
        self.http: ClientSession | None = None

    def watch_joins(self) -> None:
        """Note when each DailyTransport joins (its ``_on_joined``, before its handlers run)."""
        from pipecat.transports.daily.transport import DailyTransport

        original = DailyTransport._on_joined
        joined_at = self.joined_at

        async def on_joined(transport: Any, data: Any) -> None:
            joined_at.setdefault(transport._client.room_url, time.time())
            await original(transport, data)

        DailyTransport._on_joined = on_joined  # type: ignore[method-assign]

    async def start(self, request: web.Request) -> web.Response:
        """The runner's ``/start`` for ``createDailyRoom``: a room, a token, the bot's task."""
        from pipecat.runner.daily import configure
        from pipecat.runner.types import DailyRunnerArguments

        data = await request.json() if request.can_read_body else {}
        assert self.http is not None
        room_url, token = await configure(self.http, room_exp_duration=2.0)
        session_id = str(uuid.uuid4())
        args = DailyRunnerArguments(room_url=room_url, token=token, body=data.get("body", {}),
                                    session_id=session_id)
        session = PeerSession(session_id, room_url)
        self.sessions[session_id] = session
        session.task = asyncio.create_task(self._run(session, args), name=f"bot-{session_id}")
        self.tasks.add(session.task)
        session.task.add_done_callback(self.tasks.discard)
        return web.json_response({"dailyRoom": room_url, "dailyToken": token, "sessionId": session_id})

    async def _run(self, session: PeerSession, args: Any) -> None:
        try:
            await self.bot(args)
        except Exception as exc:  # one bot's failure must not end the others, as in the runner
            session.error = "".join(traceback.format_exception(exc))

    def _session(self, request: web.Request) -> PeerSession:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            raise web.HTTPNotFound(text="no such session")
        return session

    async def get(self, request: web.Request) -> web.Response:
        session = self._session(request)
        return web.Response(body=msgspec.json.encode(session.view(self.joined_at.get(session.room_url))),
                            content_type="application/json")

    async def stop(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session.task is not None and not session.task.done():
            session.task.cancel()
            await asyncio.wait({session.task}, timeout=5.0)
        return web.Response(body=msgspec.json.encode(session.view(self.joined_at.get(session.room_url))),
                            content_type="application/json")

    async def twilio(self, request: web.Request) -> web.Response:
        """The runner's ``POST /`` for Twilio: TwiML connecting the call to its ``/ws``."""
        host = request.headers.get("Host", request.host)
        return web.Response(text=f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
                                 f'<Stream url="ws://{host}/ws"></Stream></Connect><Pause length="40"/></Response>',
                            content_type="application/xml")

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        """The runner's ``/ws``: the call's socket, accepted, as a Starlette ``WebSocket``
        (the runner's FastAPI hands its bot one), and ``bot(WebSocketRunnerArguments)``
        run as a task until the call ends."""
        from pipecat.runner.types import WebSocketRunnerArguments

        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        socket = StarletteBridge(ws, request)
        await socket.websocket.accept()
        args = WebSocketRunnerArguments(websocket=socket.websocket)
        session_id = str(uuid.uuid4())
        session = PeerSession(session_id, "ws")
        self.sessions[session_id] = session
        session.task = asyncio.create_task(self._run(session, args), name=f"bot-{session_id}")
        self.tasks.add(session.task)
        session.task.add_done_callback(self.tasks.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({session.task})
        await ws.close()
        return ws

    async def running(self, request: web.Request) -> web.Response:
        return web.json_response({"running": len(self.tasks)})


async def serve(bot_spec: str, port: int) -> None:
    """Listen on 127.0.0.1:``port`` until cancelled; raises what loading the bot raises."""
    peer = Peer(load_bot(bot_spec))
    peer.watch_joins()
    app = web.Application()
    app.router.add_post("/start", peer.start)
    app.router.add_get("/sessions", peer.running)
    app.router.add_post("/", peer.twilio)
    app.router.add_get("/ws", peer.ws)
    app.router.add_get("/sessions/{id}", peer.get)
    app.router.add_delete("/sessions/{id}", peer.stop)
    async with ClientSession() as http:
        peer.http = http
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"peer listening on http://127.0.0.1:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bot", required=True, help="path/to/bot.py:function or module:function")
    parser.add_argument("--port", type=int, required=True)
    ns = parser.parse_args(argv)
    import uvloop

    try:
        uvloop.run(serve(ns.bot, ns.port))  # uvicorn, the runner's server, runs on uvloop when installed
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
