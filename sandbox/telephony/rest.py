"""Twilio's REST API for calls, as much as hanging up needs: fetch a call, and end it with
``Status=completed`` (what Pipecat's ``TwilioFrameSerializer`` posts when its pipeline ends).

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` (form-encoded, basic auth
``AccountSid:AuthToken``) ends an in-progress call: its phone sends ``stop`` and closes its
Media Stream. ``Status=canceled`` leaves an in-progress call alone, as Twilio does. Answers
Twilio's call resource, or Twilio's error JSON: 401 (code 20003) for bad credentials, 404
(20404) for a call that is not in progress, 400 for any other update.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from sandbox.telephony.keys import NETWORK
from sandbox.telephony.network import API_VERSION, Call, CallStatus

CALL_PATH = f"/{API_VERSION}/Accounts/{{AccountSid}}/Calls/{{CallSid}}.json"


def twilio_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An error as Twilio's REST API answers one."""
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return web.json_response(body, status=status, headers=headers)


def _date(ts: float | None) -> str | None:
    # Twilio's resources carry RFC 2822 dates.
    return None if ts is None else email.utils.format_datetime(datetime.fromtimestamp(ts, UTC))


def call_resource(call: Call, now: float) -> dict[str, Any]:
    """Twilio's JSON for ``call`` at Unix time ``now``."""
    uri = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}"
    ended = call.ended_at
    return {
        "account_sid": call.account_sid, "annotation": None, "answered_by": None, "api_version": API_VERSION,
        "caller_name": None, "date_created": _date(call.started_at), "date_updated": _date(ended or now),
        "direction": call.direction, "duration": None if ended is None else str(round(ended - call.started_at)),
        "end_time": _date(ended), "forwarded_from": None, "from": call.from_number,
        "from_formatted": call.from_number, "group_sid": None, "parent_call_sid": None, "phone_number_sid": None,
        "price": None, "price_unit": "USD", "queue_time": "0", "sid": call.sid, "start_time": _date(call.started_at),
        "status": call.status.value, "to": call.to_number, "to_formatted": call.to_number, "trunk_sid": None,
        "uri": f"{uri}.json",
        "subresource_uris": {name: f"{uri}/{name.capitalize()}.json"
                             for name in ("notifications", "recordings", "payments", "events", "siprec", "streams")},
    }


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, password) of a ``Basic`` Authorization header, or None if it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("latin1").partition(":")
    except binascii.Error:
        return None
    return (username, password) if colon else None


def _refused(request: web.Request) -> web.Response | None:
    """Twilio's 401 unless the request's basic auth may act for its account."""
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    if credentials is None or not request.app[NETWORK].authorized(request.match_info["AccountSid"], *credentials):
        return twilio_error(401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
    return None


def _not_found(request: web.Request) -> web.Response:
    return twilio_error(404, 20404, f"The requested resource {request.path} was not found")


async def fetch_call(request: web.Request) -> web.Response:
    """``GET …/Calls/{CallSid}.json``: the call, while it is in progress."""
    network = request.app[NETWORK]
    if (refused := _refused(request)) is not None:
        return refused
    call = network.find(request.match_info["AccountSid"], request.match_info["CallSid"])
    if call is None:
        return _not_found(request)
    return web.json_response(call_resource(call, network.clock()))


async def update_call(request: web.Request) -> web.Response:
    """``POST …/Calls/{CallSid}.json``: ``Status=completed`` hangs the call up."""
    network = request.app[NETWORK]
    if (refused := _refused(request)) is not None:
        return refused
    account_sid, call_sid = request.match_info["AccountSid"], request.match_info["CallSid"]
    form = await request.post()
    status = form.get("Status")
    if status not in (CallStatus.COMPLETED.value, "canceled"):
        return twilio_error(400, 20001, "The sandbox updates a call's Status only, to 'completed' or 'canceled'")
    call = network.find(account_sid, call_sid)
    if call is None:
        return _not_found(request)
    if status == CallStatus.COMPLETED.value:
        network.hang_up(account_sid, call_sid)
    return web.json_response(call_resource(call, network.clock()))
