"""A webhook receiver for tests: a real aiohttp server on a loopback port that answers each
POST as its script says (a status, or ``HANG``: never answer), and keeps every request.

``verify`` checks a request as the README tells receivers to, written from Standard
Webhooks' text rather than from callfleet's signing code, so a sender and a verifier that
agreed on a wrong formula would fail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from tests.conftest import free_port

HANG = "hang"
Answer = int | Literal["hang"]


@dataclass(frozen=True)
class Request:
    """One POST as received, and the status it was answered with (None: left hanging)."""

    headers: dict[str, str]
    body: bytes
    status: int | None

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


def verify(secret: str, request: Request) -> bool:
    """Whether ``request`` carries a valid v1 signature for ``secret`` (``whsec_<base64>``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [s.removeprefix("v1,") for s in request.headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in offered)


class WebhookReceiver:
    """``WebhookReceiver([500, 200])``: the first POST gets a 500, every later one ``then``."""

    def __init__(self, script: list[Answer] | None = None, then: Answer = 200) -> None:
        self.script = list(script or [])
        self.then = then
        self.requests: list[Request] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/callfleet?token=in-the-url"
        self._released = asyncio.Event()  # set at close: hanging requests may end
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/callfleet", self._receive)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.script.pop(0) if self.script else self.then
        headers = {k.lower(): v for k, v in request.headers.items()}
        if answer == HANG:
            self.requests.append(Request(headers, body, None))
            await self._released.wait()
            return web.Response(status=503)
        self.requests.append(Request(headers, body, int(answer)))
        return web.Response(status=int(answer))

    def delivered(self, kind: str | None = None) -> list[Request]:
        """The requests answered with a 2xx (of events of ``kind``, when given)."""
        return [r for r in self.requests if r.status is not None and 200 <= r.status < 300
                and (kind is None or r.event["type"] == kind)]

    def attempts(self, kind: str) -> list[Request]:
        """Every request that carried an event of ``kind``, however it was answered."""
        return [r for r in self.requests if r.event["type"] == kind]
