"""Daily's REST API (the sandbox's) passed through unchanged, noting every call: what a
supervisor asked of "Daily", seen from outside it. Point ``[daily] api_url`` at
``witness.api_url``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import free_port

PINLESS = "/v1/dialin/pinlessCallUpdate"


@dataclass
class Call:
    method: str
    path: str
    status: int
    at: float  # time.monotonic() when it reached the witness
    sent: bytes
    answer: bytes


class RestWitness:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: list[Call] = []
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/v1"
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        arrived = time.monotonic()
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        sent = await request.read()
        async with self._http.request(request.method, self.upstream + request.path_qs, headers=headers,
                                      data=sent) as resp:
            answer = await resp.read()
            self.calls.append(Call(request.method, request.path, resp.status, arrived, sent, answer))
            passed = {k: v for k, v in resp.headers.items() if k in ("Content-Type", "Retry-After")}
            return web.Response(body=answer, status=resp.status, headers=passed)

    def deletes_of(self, room: str) -> int:
        return sum(1 for c in self.calls if c.method == "DELETE" and c.path == f"/v1/rooms/{room}")

    @property
    def tokens(self) -> list[str]:
        """Every meeting token Daily handed out, in order."""
        return [json.loads(c.answer)["token"] for c in self.calls
                if c.method == "POST" and c.path == "/v1/meeting-tokens" and c.status == 200]

    @property
    def pinless_calls(self) -> list[tuple[dict[str, Any], int]]:
        """Every ``pinlessCallUpdate``: (the body sent, the status answered)."""
        return [(json.loads(c.sent), c.status) for c in self.calls if c.method == "POST" and c.path == PINLESS]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()
