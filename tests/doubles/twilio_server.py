"""A small server of the kind a Twilio number points at, on 127.0.0.1, started by the test
that uses it: ``POST /voice`` answers TwiML, ``GET /media`` takes the Media Stream.

It records the webhook requests and every message of the stream, parsed as plain JSON, so a
test checks the phone against Twilio's documented shapes rather than against the phone's own
types. A test drives the server's side by hand (``send``), or lets it echo the phone's media
back (``echo``); ``hang_up`` ends the call through a Twilio REST API, as a bot does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web


def connect_twiml(stream_url: str, parameters: dict[str, str] | None = None, after: str = "") -> str:
    """A webhook's answer connecting the call's Media Stream to ``stream_url``."""
    params = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in (parameters or {}).items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{stream_url}">{params}'
            f"</Stream></Connect>{after}</Response>")


class TwilioServer:
    """The far end of a phone call (one at a time)."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo
        self.twiml: str | None = None  # the webhook's answer; default: connect to /media
        self.status = 200
        self.webhooks: list[tuple[dict[str, str], dict[str, str]]] = []  # (form, headers)
        self.received: list[dict[str, Any]] = []  # every stream message, in order
        self.handshake_headers: dict[str, str] = {}
        self.ws: web.WebSocketResponse | None = None
        self.closed = asyncio.Event()  # the stream's socket closed
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/voice?tenant=t1"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/voice", self._voice)
        app.router.add_get("/media", self._media)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _voice(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.webhooks.append((form, dict(request.headers)))
        body = self.twiml if self.twiml is not None else connect_twiml(self.stream_url, {"tenant": "t1", "lang": "en"})
        return web.Response(text=body, status=self.status, content_type="application/xml")

    async def _media(self, request: web.Request) -> web.WebSocketResponse:
        self.handshake_headers = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        async for message in ws:
            event = json.loads(message.data)
            self.received.append(event)
            self._arrived.set()
            if self.echo and event.get("event") == "media":
                await self.send({"event": "media", "streamSid": event["streamSid"],
                                 "media": {"payload": event["media"]["payload"]}})
        self.closed.set()
        return ws

    # -- the test's side -----------------------------------------------------------------------

    def of(self, event: str) -> list[dict[str, Any]]:
        """The stream's messages of one ``event``, in order."""
        return [m for m in self.received if m.get("event") == event]

    @property
    def stream_sid(self) -> str:
        return str(self.of("start")[0]["streamSid"])

    async def until(self, condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
        """Wait until ``condition`` holds (is truthy), re-checked as messages arrive. Raises ``TimeoutError``."""
        async def wait() -> None:
            while True:
                self._arrived.clear()  # before the check: nothing arriving after it is missed
                if condition():
                    return
                await self._arrived.wait()
        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"the server never saw {what}") from None

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def close(self) -> None:
        """Close the stream from the server's side."""
        assert self.ws is not None
        await self.ws.close()


async def hang_up(api_url: str, account_sid: str, call_sid: str, auth: tuple[str, str] | None = None,
                  status: str = "completed") -> tuple[int, dict[str, Any]]:
    """End a call through the Twilio REST API at ``api_url``: (HTTP status, JSON body)."""
    login, password = auth or (account_sid, "token")
    url = f"{api_url}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": aiohttp.encode_basic_auth(login, password)}
        async with session.post(url, data={"Status": status}, headers=headers) as resp:
            return resp.status, await resp.json()
