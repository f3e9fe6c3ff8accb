"""The sandbox's own endpoints, beside Daily's: faults switched at run time, a phone hanging
up or pressing keys, inspection and counters, and the room look-up ``sandbox.client`` does
before it joins."""

from __future__ import annotations

from aiohttp import web

from sandbox.limits import FAULT_FIELDS
from sandbox.rest.errors import bad_request, not_found
from sandbox.rest.keys import FAULTS, ROOMS, STORE
from sandbox.rest.params import json_body


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
        reply["disconnected"] = request.app[ROOMS].members.disconnect(disconnect)
    return web.json_response(reply)


async def hang_up(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not request.app[ROOMS].telephony.hang_up(str(body.get("room")), str(body.get("participant_id"))):
        raise not_found("no such phone participant")
    return web.json_response({"hungUp": True})


async def press_dtmf(request: web.Request) -> web.Response:
    body = await json_body(request)
    telephony = request.app[ROOMS].telephony
    room, pid, tones = str(body.get("room")), str(body.get("participant_id")), str(body.get("tones", ""))
    if telephony.phone(room, pid) is None:
        raise not_found("no such phone participant")
    telephony.press_keys(room, pid, tones)
    return web.json_response({"pressed": tones})


async def inspect_room(request: web.Request) -> web.Response:
    return web.json_response({"data": request.app[ROOMS].members.inspect(request.match_info["name"])})


async def sandbox_stats(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS]
    return web.json_response({
        "rooms": len(request.app[STORE].live_rooms()),
        "rooms_created": request.app[STORE].rooms_created,
        "live_rooms": len(rooms.members.rooms),
        "participants": sum(len(r.participants) for r in rooms.members.rooms.values()),
        "frames_routed": rooms.router.frames_routed,
        "frames_dropped": rooms.router.frames_dropped,
        "bad_frames": rooms.bad_frames,
    })


async def room_lookup(request: web.Request) -> web.Response:
    """What ``sandbox.client`` asks before joining (Daily's client fetches room info too)."""
    name = request.match_info["name"]
    room = request.app[STORE].rooms.get(name)
    if room is None:
        raise not_found(f"room {name} not found")
    return web.json_response({"room": name, "endpoint": request.app[ROOMS].endpoint.address})
