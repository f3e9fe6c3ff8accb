"""Dial-in: the sandbox's simulated incoming call (``POST /v1/sandbox/dialin``), which posts
Daily's dial-in webhook, and Daily's ``pinlessCallUpdate``, which puts the call in a room."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import uuid
from hashlib import sha256
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from sandbox.rest.errors import bad_request, not_found
from sandbox.rest.keys import DIALIN_HMAC_SECRET, HTTP, ROOMS, STORE, TASKS
from sandbox.rest.params import json_body
from sandbox.store import DialinCall

log = structlog.get_logger("sandbox.rest")


async def pinless_call_update(request: web.Request) -> web.Response:
    body = await json_body(request)
    for field in ("callId", "callDomain", "sipUri"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise bad_request(f"{field} is required")
    store = request.app[STORE]
    call = store.dialins.get(body["callId"])
    if call is None or call.call_domain != body["callDomain"]:
        raise not_found(f"call {body['callId']} not found")
    if call.room_name is not None:
        raise bad_request(f"call {call.call_id} is already connected")
    sip_uri = body["sipUri"].removeprefix("sip:")
    room = next((r for r in store.rooms.values() if r.sip_endpoint == sip_uri), None)
    if room is None or room.expired(store.clock()):
        raise bad_request(f"sipUri {body['sipUri']} is not a SIP endpoint of any room")
    request.app[ROOMS].telephony.connect_dialin(call, room)
    return web.json_response({"status": "ok", "callId": call.call_id})


async def simulate_dialin(request: web.Request) -> web.Response:
    body = await json_body(request)
    for field in ("webhook_url", "From", "To"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise bad_request(f"{field} is required")
    store = request.app[STORE]
    call = DialinCall(
        call_id=str(uuid.uuid4()),
        call_domain=store.call_domain,
        from_number=body["From"],
        to_number=body["To"],
        webhook_url=body["webhook_url"],
        tone_hz=float(body.get("tone_hz", 440.0)),
    )
    store.dialins[call.call_id] = call
    hook = {"From": call.from_number, "To": call.to_number, "callId": call.call_id,
            "callDomain": call.call_domain, "sipHeaders": body.get("sipHeaders") or {}}
    task = asyncio.get_running_loop().create_task(_post_webhook(request.app, call.webhook_url, hook))
    request.app[TASKS].add(task)
    task.add_done_callback(request.app[TASKS].discard)
    return web.json_response({"callId": call.call_id, "callDomain": call.call_domain})


def _pinless_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """Daily's ``X-Pinless-Signature``: base64(HMAC-SHA256(secret, f"{timestamp}.{body}"))."""
    return base64.b64encode(hmac.new(secret, timestamp.encode() + b"." + body, sha256).digest()).decode()


async def _post_webhook(app: web.Application, url: str, body: dict[str, Any]) -> None:
    """Post Daily's dial-in webhook, signed as Daily signs it when the domain has a secret."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    secret = app[DIALIN_HMAC_SECRET]
    if secret:
        # The real time, not the store's clock: the receiver checks it against its own.
        timestamp = str(int(time.time()))
        headers.update({"X-Pinless-Timestamp": timestamp,
                        "X-Pinless-Signature": _pinless_signature(secret, timestamp, raw)})
    try:
        async with app[HTTP].post(url, data=raw, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status >= 300:
                log.warning("dial-in webhook refused", url=url, status=resp.status, body=(await resp.text())[:200])
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("dial-in webhook failed", url=url, error=str(exc))
