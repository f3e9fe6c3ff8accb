"""Phone lines: how a phone in another process (``callfleet phone --sandbox URL``) puts its
call on a sandbox's network, so that Twilio's REST API there can hang it up.

The phone opens ``WS {sandbox}/v1/sandbox/phones/line?AccountSid=&From=&To=`` before it
calls the webhook; the sandbox registers the call and answers ``{"event": "connected",
"callSid": "CA…"}``; if the call is ended through the REST API it sends ``{"event":
"hangup"}``. The call leaves the network when either side closes the line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp
from aiohttp import web

from sandbox.telephony.keys import NETWORK
from sandbox.telephony.network import ACCOUNT_SID

LINE_PATH = "/v1/sandbox/phones/line"


class LineError(Exception):
    """No line to the sandbox: it cannot be reached, or did not answer as a line does."""


async def line(request: web.Request) -> web.WebSocketResponse:
    """The sandbox's end of a phone line: one call, for as long as the socket is open."""
    network = request.app[NETWORK]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    hung_up = asyncio.Event()
    query = request.query
    call = network.open(query.get("AccountSid", ACCOUNT_SID), query.get("From", ""), query.get("To", ""), hung_up.set)
    try:
        await ws.send_json({"event": "connected", "callSid": call.sid})
        closed = asyncio.ensure_future(ws.receive())  # the phone says nothing more: any frame ends the line
        ended = asyncio.ensure_future(hung_up.wait())
        try:
            await asyncio.wait({closed, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            ended.cancel()
        if hung_up.is_set():
            await ws.send_json({"event": "hangup"})
    except ConnectionResetError:
        pass  # the phone went away: its call is over all the same
    finally:
        network.end(call.sid)
        await ws.close()
    return ws


class RemoteCarrier:
    """A ``Carrier`` reached over phone lines to the sandbox at ``sandbox_url``."""

    def __init__(self, sandbox_url: str) -> None:
        self.url = sandbox_url.rstrip("/") + LINE_PATH
        self._lines: dict[str, tuple[aiohttp.ClientSession, asyncio.Task[None]]] = {}

    async def connect(self, account_sid: str, from_number: str, to_number: str,
                      hang_up: Callable[[], None]) -> str:
        """Open a line for a new call and answer its CallSid.

        Raises ``LineError`` if the sandbox cannot be reached or does not answer as a line."""
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(self.url, params={"AccountSid": account_sid, "From": from_number,
                                                            "To": to_number})
            hello = await ws.receive_json()
        except (aiohttp.ClientError, TypeError, ValueError) as exc:
            # TypeError/ValueError: the first message is not JSON text.
            await session.close()
            raise LineError(f"{self.url}: {exc or type(exc).__name__}") from None
        call_sid = hello.get("callSid") if isinstance(hello, dict) else None
        if not isinstance(call_sid, str):
            await session.close()
            raise LineError(f"{self.url} answered {hello!r}, not a phone line")
        self._lines[call_sid] = (session, asyncio.create_task(self._listen(ws, hang_up)))
        return call_sid

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, hang_up: Callable[[], None]) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("event") == "hangup":
                hang_up()
        await ws.close()

    async def disconnect(self, call_sid: str) -> None:
        """Close the call's line (the sandbox forgets the call)."""
        session, listener = self._lines.pop(call_sid, (None, None))
        if session is None or listener is None:
            return
        listener.cancel()
        await session.close()
