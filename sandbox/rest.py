"""Daily's REST API under ``/v1``, served by the sandbox with Daily's bodies and errors.

Also the sandbox's own control endpoints under ``/v1/sandbox/`` (faults, simulated phone
calls, inspection) and the room look-up ``sandbox.client`` does before it joins.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from hashlib import sha256
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from sandbox.limits import FAULT_FIELDS, Faults, TokenBuckets, rate_class, retry_after_header
from sandbox.rooms import RoomError, RoomServer
from sandbox.store import DialinCall, Store, validate_room_properties
from sandbox.tokens import TokenError, TokenSigner, validate_properties

log = structlog.get_logger("sandbox.rest")

STORE = web.AppKey("store", Store)
ROOMS = web.AppKey("rooms", RoomServer)
SIGNER = web.AppKey("signer", TokenSigner)
FAULTS = web.AppKey("faults", Faults)
BUCKETS = web.AppKey("buckets", TokenBuckets)
API_KEY = web.AppKey("api_key", str)
BASE_URL = web.AppKey("base_url", str)
HTTP = web.AppKey("http", aiohttp.ClientSession)
TASKS = web.AppKey("tasks", set)
DIALIN_HMAC_SECRET = web.AppKey("dialin_hmac_secret", bytes)  # the domain's pinless `hmac`, decoded; b"": unsigned

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DailyError(web.HTTPException):
    """An error answered in Daily's shape ``{"error", "info"}``."""

    def __init__(self, status: int, error: str, info: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": error, "info": info}),
            content_type="application/json",
            headers=headers,
        )


def bad_request(info: str) -> DailyError:
    return DailyError(400, "invalid-request-error", info)


def not_found(info: str) -> DailyError:
    return DailyError(404, "not-found", info)


# -- middlewares -------------------------------------------------------------------------


@web.middleware
async def daily_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DailyError:
        raise
    except web.HTTPNotFound:
        raise DailyError(404, "not-found", f"{request.path} does not exist") from None
    except web.HTTPMethodNotAllowed:
        raise DailyError(405, "invalid-request-error", f"{request.method} is not allowed on {request.path}") from None
    except web.HTTPRequestEntityTooLarge:
        raise DailyError(413, "invalid-request-error", "request body too large") from None
    except Exception:
        log.exception("unhandled error", path=request.path)
        raise DailyError(500, "server-error", "internal server error") from None


@web.middleware
async def auth_and_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith("/v1/") or path.startswith("/v1/sandbox/") or "/download" in path:
        return await handler(request)
    header = request.headers.get("Authorization")
    if header is None:
        raise DailyError(400, "authorization-header-error", "Authorization header missing")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise DailyError(400, "authorization-header-error", "Authorization header must be 'Bearer <API key>'")
    expected = request.app[API_KEY]
    if expected and not hmac.compare_digest(key.strip().encode(), expected.encode()):
        raise DailyError(401, "authentication-error", "Invalid API key")
    faults = request.app[FAULTS]
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.stall_rate and faults.rng.random() < faults.stall_rate:
        await asyncio.sleep(faults.stall_s)
    if faults.rate_limit_burst > 0:
        faults.rate_limit_burst -= 1
        raise DailyError(429, "rate-limit-error", "Rate limit exceeded (injected)",
                         headers={"Retry-After": str(faults.retry_after_s)})
    if faults.error_rate and faults.rng.random() < faults.error_rate:
        raise DailyError(500, "server-error", "internal server error (injected)")
    buckets = request.app[BUCKETS]
    buckets.enabled = faults.rate_limits
    wait = buckets.take(key.strip(), rate_class(request.method, path))
    if wait:
        raise DailyError(429, "rate-limit-error", "Rate limit exceeded",
                         headers={"Retry-After": retry_after_header(wait)})
    return await handler(request)


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DailyError(400, "json-parsing-error", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo} and {hi}")
    return value


def paginate(request: web.Request, items: list[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    """Daily's pagination over ``items`` (already newest first)."""
    limit = _int_param(request, "limit", 100, 1, 100)
    after, before = request.query.get("starting_after"), request.query.get("ending_before")
    ids = [key(i) for i in items]
    if after is not None:
        if after not in ids:
            raise bad_request(f"starting_after {after} not found")
        page = items[ids.index(after) + 1 :][:limit]
    elif before is not None:
        if before not in ids:
            raise bad_request(f"ending_before {before} not found")
        page = items[: ids.index(before)][-limit:]
    else:
        page = items[:limit]
    return {"total_count": len(items), "data": page}


# -- rooms -------------------------------------------------------------------------------


async def create_room(request: web.Request) -> web.Response:
    body = await json_body(request)
    unknown = set(body) - {"name", "privacy", "properties"}
    if unknown:
        raise bad_request(f"{sorted(unknown)[0]} is not a valid field")
    privacy = body.get("privacy", "public")
    if privacy not in ("public", "private"):
        raise bad_request("privacy must be 'public' or 'private'")
    try:
        props = validate_room_properties(body.get("properties", {}))
        room = request.app[STORE].add_room(body.get("name"), privacy, dict(props))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response(room.to_json(request.app[BASE_URL]))


def _room(request: web.Request) -> Any:
    name = request.match_info["name"]
    room = request.app[STORE].rooms.get(name)
    if room is None or room.expired():
        raise not_found(f"room {name} not found")
    return room


async def list_rooms(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]
    rooms = request.app[STORE].live_rooms()
    page = paginate(request, rooms, key=lambda r: r.id)
    page["data"] = [r.to_json(base) for r in page["data"]]
    return web.json_response(page)


async def get_room(request: web.Request) -> web.Response:
    return web.json_response(_room(request).to_json(request.app[BASE_URL]))


async def update_room(request: web.Request) -> web.Response:
    room = _room(request)
    body = await json_body(request)
    unknown = set(body) - {"privacy", "properties"}
    if unknown:
        raise bad_request(f"{sorted(unknown)[0]} is not a valid field")
    if "privacy" in body:
        if body["privacy"] not in ("public", "private"):
            raise bad_request("privacy must be 'public' or 'private'")
        room.privacy = body["privacy"]
    try:
        room.properties.update(validate_room_properties(body.get("properties", {})))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response(room.to_json(request.app[BASE_URL]))


async def delete_room(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    store = request.app[STORE]
    if name not in store.rooms:
        raise not_found(f"room {name} not found")
    request.app[ROOMS].close_room(name, "Meeting has ended (room deleted)")
    del store.rooms[name]
    return web.json_response({"deleted": True, "name": name})


async def room_presence(request: web.Request) -> web.Response:
    room = _room(request)
    data = request.app[ROOMS].presence(room.name)
    return web.json_response({"total_count": len(data), "data": data})


async def all_presence(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    return web.json_response({name: rooms.presence(name) for name in rooms.rooms})


async def room_app_message(request: web.Request) -> web.Response:
    room = _room(request)
    body = await json_body(request)
    if "data" not in body:
        raise bad_request("data is required")
    if len(json.dumps(body["data"]).encode()) > 4096:
        raise bad_request("data must be 4 KB or less")
    recipient = body.get("recipient", "*")
    live = request.app[ROOMS].rooms.get(room.name)
    if live is not None:
        try:
            request.app[ROOMS].send_app_message(live, body["data"], recipient, sender="rest-api")
        except RoomError as exc:
            raise bad_request(str(exc)) from None
    return web.json_response({"sent": True})


async def room_eject(request: web.Request) -> web.Response:
    room = _room(request)
    body = await json_body(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("ids must be a list of participant ids")
    return web.json_response({"ejectedIds": request.app[ROOMS].eject(room.name, ids)})


# -- meeting tokens ----------------------------------------------------------------------


async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        props = validate_properties(body.get("properties", {}))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response({"token": request.app[SIGNER].issue(props)})


async def validate_token(request: web.Request) -> web.Response:
    try:
        props = request.app[SIGNER].properties(request.match_info["token"])
    except TokenError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response(props)


# -- recordings --------------------------------------------------------------------------


async def list_recordings(request: web.Request) -> web.Response:
    recs = sorted(request.app[STORE].recordings.values(), key=lambda r: -r.seq)
    room_name = request.query.get("room_name")
    if room_name:
        recs = [r for r in recs if r.room_name == room_name]
    page = paginate(request, recs, key=lambda r: r.id)
    page["data"] = [r.to_json() for r in page["data"]]
    return web.json_response(page)


def _recording(request: web.Request) -> Any:
    rec = request.app[STORE].recordings.get(request.match_info["id"])
    if rec is None:
        raise not_found(f"recording {request.match_info['id']} not found")
    return rec


async def get_recording(request: web.Request) -> web.Response:
    return web.json_response(_recording(request).to_json())


async def delete_recording(request: web.Request) -> web.Response:
    rec = _recording(request)
    del request.app[STORE].recordings[rec.id]
    if rec.path is not None:
        rec.path.unlink(missing_ok=True)
    return web.json_response({"deleted": True, "id": rec.id})


def _link_signature(app: web.Application, rec_id: str, expires: int) -> str:
    return hmac.new(app[SIGNER]._secret.encode(), f"{rec_id}:{expires}".encode(), sha256).hexdigest()


async def recording_access_link(request: web.Request) -> web.Response:
    rec = _recording(request)
    if rec.status != "finished":
        raise bad_request(f"recording {rec.id} is {rec.status}")
    valid_for = _int_param(request, "valid_for_secs", 3600, 900, 43200)
    expires = int(time.time()) + valid_for
    sig = _link_signature(request.app, rec.id, expires)
    link = f"{request.app[BASE_URL]}/v1/recordings/{rec.id}/download?expires={expires}&sig={sig}"
    return web.json_response({"download_link": link, "expires": expires})


async def recording_download(request: web.Request) -> web.StreamResponse:
    rec = _recording(request)
    try:
        expires = int(request.query["expires"])
        sig = request.query["sig"]
    except (KeyError, ValueError):
        raise DailyError(403, "forbidden-error", "missing or malformed link signature") from None
    if not hmac.compare_digest(sig, _link_signature(request.app, rec.id, expires)) or time.time() > expires:
        raise DailyError(403, "forbidden-error", "link expired or not valid")
    if rec.path is None or not rec.path.exists():
        raise not_found("recording file is gone")
    return web.FileResponse(rec.path, headers={"Content-Type": "audio/wav"})


# -- dial-in -----------------------------------------------------------------------------


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
    if room is None or room.expired():
        raise bad_request(f"sipUri {body['sipUri']} is not a SIP endpoint of any room")
    request.app[ROOMS].connect_dialin(call, room)
    return web.json_response({"status": "ok", "callId": call.call_id})


# -- sandbox control ---------------------------------------------------------------------


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].to_json())


async def set_faults(request: web.Request) -> web.Response:
    body = await json_body(request)
    faults = request.app[FAULTS]
    disconnect = body.pop("disconnect", None)
    if disconnect is not None and not isinstance(disconnect, str):
        raise bad_request("disconnect must be a room name or '*'")
    for key, value in body.items():
        types = FAULT_FIELDS.get(key)
        if types is None:
            raise bad_request(f"{key} is not a fault setting")
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise bad_request(f"{key} must be of type {types[0].__name__}")
    for key, value in body.items():
        setattr(faults, key, value)
    if "seed" in body:
        faults.__post_init__()
    reply = faults.to_json()
    if disconnect is not None:
        reply["disconnected"] = request.app[ROOMS].disconnect(disconnect)
    return web.json_response(reply)


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
        timestamp = str(int(time.time()))
        headers.update({"X-Pinless-Timestamp": timestamp,
                        "X-Pinless-Signature": _pinless_signature(secret, timestamp, raw)})
    try:
        async with app[HTTP].post(url, data=raw, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status >= 300:
                log.warning("dial-in webhook refused", url=url, status=resp.status, body=(await resp.text())[:200])
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("dial-in webhook failed", url=url, error=str(exc))


async def hang_up(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not request.app[ROOMS].hang_up(str(body.get("room")), str(body.get("participant_id"))):
        raise not_found("no such phone participant")
    return web.json_response({"hungUp": True})


async def press_dtmf(request: web.Request) -> web.Response:
    body = await json_body(request)
    rooms = request.app[ROOMS]
    room, pid, tones = str(body.get("room")), str(body.get("participant_id")), str(body.get("tones", ""))
    live = rooms.rooms.get(room)
    if live is None or pid not in live.participants or live.participants[pid].phone is None:
        raise not_found("no such phone participant")
    for i, digit in enumerate(tones):
        asyncio.get_running_loop().call_later(0.05 * i, rooms.press, room, pid, digit)
    return web.json_response({"pressed": tones})


async def inspect_room(request: web.Request) -> web.Response:
    return web.json_response({"data": request.app[ROOMS].inspect(request.match_info["name"])})


async def sandbox_stats(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    return web.json_response({
        "rooms": len(request.app[STORE].live_rooms()),
        "rooms_created": request.app[STORE].rooms_created,
        "live_rooms": len(rooms.rooms),
        "participants": sum(len(r.participants) for r in rooms.rooms.values()),
        "frames_routed": rooms.frames_routed,
        "frames_dropped": rooms.frames_dropped,
        "bad_frames": rooms.bad_frames,
    })


async def room_lookup(request: web.Request) -> web.Response:
    """What ``sandbox.client`` asks before joining (Daily's client fetches room info too)."""
    name = request.match_info["name"]
    room = request.app[STORE].rooms.get(name)
    if room is None:
        raise not_found(f"room {name} not found")
    return web.json_response({"room": name, "endpoint": request.app[ROOMS].endpoint})


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/rooms", create_room)
    r.add_get("/v1/rooms", list_rooms)
    r.add_get("/v1/rooms/{name}", get_room)
    r.add_post("/v1/rooms/{name}", update_room)
    r.add_delete("/v1/rooms/{name}", delete_room)
    r.add_get("/v1/rooms/{name}/presence", room_presence)
    r.add_post("/v1/rooms/{name}/send-app-message", room_app_message)
    r.add_post("/v1/rooms/{name}/eject", room_eject)
    r.add_get("/v1/presence", all_presence)
    r.add_post("/v1/meeting-tokens", create_token)
    r.add_get("/v1/meeting-tokens/{token}", validate_token)
    r.add_get("/v1/recordings", list_recordings)
    r.add_get("/v1/recordings/{id}", get_recording)
    r.add_delete("/v1/recordings/{id}", delete_recording)
    r.add_get("/v1/recordings/{id}/access-link", recording_access_link)
    r.add_get("/v1/recordings/{id}/download", recording_download)
    r.add_post("/v1/dialin/pinlessCallUpdate", pinless_call_update)
    r.add_get("/v1/sandbox/faults", get_faults)
    r.add_post("/v1/sandbox/faults", set_faults)
    r.add_post("/v1/sandbox/dialin", simulate_dialin)
    r.add_post("/v1/sandbox/hangup", hang_up)
    r.add_post("/v1/sandbox/dtmf", press_dtmf)
    r.add_get("/v1/sandbox/rooms/{name}/participants", inspect_room)
    r.add_get("/v1/sandbox/stats", sandbox_stats)
    r.add_get("/_sandbox/rooms/{name}", room_lookup)
