"""A dial-in session's phone call, put through to its room once.

Daily's webhook announced a call that waits to be forwarded. Once the room's SIP endpoint
is ready, the call goes there with ``pinlessCallUpdate``: when the worker reports
``DialinReady``, or earlier if a hosted bot asks through the Daily proxy. Whoever asks
first makes the one call, and everyone gets its outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any

from supervisor.daily_rest import DailyAPIError, DailyREST
from supervisor.sessions.requests import DialinSettings


class DialinCall:
    """The phone call one dial-in session answers."""

    def __init__(self, rest: DailyREST, settings: DialinSettings, log: Any) -> None:
        self.rest = rest
        self.settings = settings
        self.log = log
        self._forwarded: asyncio.Future[dict[str, Any]] | None = None

    def forward(self, sip_uri: str) -> asyncio.Future[dict[str, Any]]:
        """``pinlessCallUpdate`` for this call, made once: every caller gets the one call's
        outcome (Daily's reply, or its ``DailyAPIError``)."""
        if self._forwarded is None:
            s = self.settings
            self._forwarded = asyncio.ensure_future(self.rest.pinless_call_update(s.call_id, s.call_domain, sip_uri))
            self.log.info("dial-in forwarded", call_id=s.call_id, sip_uri=sip_uri)
        return self._forwarded

    async def put_through(self, endpoint: str | None) -> str | None:
        """The room's SIP endpoint is ready: forward the call to it. Returns why that
        failed (the session ends ``dialin_failed``), or None."""
        if not endpoint:
            return "the room has no SIP endpoint"
        sip_uri = endpoint if str(endpoint).startswith("sip:") else f"sip:{endpoint}"
        try:
            await self.forward(sip_uri)
        except DailyAPIError as exc:
            return f"pinlessCallUpdate failed: {exc}"
        return None
