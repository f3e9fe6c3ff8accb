"""The control socket (``ipc://RUN_DIR/control.sock``) and the event feed
(``ipc://RUN_DIR/events.sock``).

Requests are JSON ``{"command": NAME, "args": {...}}``; every one is answered
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}`` -- garbage included,
never a traceback. State changes are published as ``[kind, json]`` on a PUB socket, so
``ctl events`` (and anything else) is just a subscriber.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
import structlog
import zmq
import zmq.asyncio

from supervisor.commands import REGISTRY, CommandError, DaemonControl

log = structlog.get_logger("supervisor.control")


class ControlServer:
    def __init__(self, daemon: DaemonControl, run_dir: Path) -> None:
        self.daemon = daemon
        self.ctx = zmq.asyncio.Context()
        self.control_path = run_dir / "control.sock"
        self.events_path = run_dir / "events.sock"
        self.endpoint = f"ipc://{self.control_path}"
        self.events_endpoint = f"ipc://{self.events_path}"
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10000)
        self.pub.bind(self.events_endpoint)
        for path in (self.control_path, self.events_path):
            os.chmod(path, 0o600)
        self.bad_requests = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.pub.send_multipart([kind.encode(), msgspec.json.encode(data)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # a feed with no room for more drops it; state is in the store anyway

    async def _serve(self) -> None:
        while True:
            try:
                parts = await self.sock.recv_multipart()
            except zmq.ZMQError:
                return
            if len(parts) < 2:
                self.bad_requests += 1
                continue
            peer, body = parts[0], parts[-1]
            reply = await self.handle(body)
            try:
                await self.sock.send_multipart([peer, *parts[1:-1], msgspec.json.encode(reply)], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                pass

    async def handle(self, body: bytes) -> dict[str, Any]:
        try:
            request = msgspec.json.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets bad UTF-8 through bare
            self.bad_requests += 1
            return {"ok": False, "error": f"malformed request: {exc}"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            self.bad_requests += 1
            return {"ok": False, "error": 'malformed request: expected {"command": NAME, "args": {...}}'}
        command = REGISTRY.get(request["command"])
        if command is None:
            return {"ok": False, "error": f"unknown command {request['command']!r}; known: {', '.join(REGISTRY)}"}
        args = request.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        try:
            return {"ok": True, "result": await command.execute(self.daemon, args)}
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control command failed", command=command.name)
            return {"ok": False, "error": f"{command.name} failed: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sock.close(0)
        self.pub.close(0)
        self.ctx.term()
        for path in (self.control_path, self.events_path):
            path.unlink(missing_ok=True)
