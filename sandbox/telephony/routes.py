"""The phone network's routes on the sandbox's app: Twilio's REST API for calls, at the root
as on ``api.twilio.com``, and the phone lines of phones in other processes."""

from __future__ import annotations

from aiohttp import web

from sandbox.telephony import lines, rest
from sandbox.telephony.keys import NETWORK
from sandbox.telephony.network import PhoneNetwork


def setup(app: web.Application, network: PhoneNetwork) -> None:
    """Serve ``network`` from ``app`` (not yet started).

    Raises ``RuntimeError`` if ``app`` is already frozen (started)."""
    app[NETWORK] = network
    app.router.add_get(rest.CALL_PATH, rest.fetch_call)
    app.router.add_post(rest.CALL_PATH, rest.update_call)
    app.router.add_get(lines.LINE_PATH, lines.line)
