"""Daily's rooms endpoints: ``/v1/rooms`` (create, list, get, update, delete), presence,
app messages sent through the API, and ejecting participants."""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.rest.errors import bad_request, not_found
from sandbox.rest.keys import BASE_URL, ROOMS, STORE
from sandbox.rest.params import json_body, paginate
from sandbox.rooms.messages import APP_MESSAGE_LIMIT
from sandbox.rooms.participants import RoomError
from sandbox.store import Room, validate_room_properties


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


def live_room(request: web.Request) -> Room:
    """The room the path names; raises ``DailyError`` (404) if it is gone or expired."""
    name = request.match_info["name"]
    room = request.app[STORE].live_room(name)
    if room is None:
        raise not_found(f"room {name} not found")
    return room


async def list_rooms(request: web.Request) -> web.Response:
    base = request.app[BASE_URL]
    rooms = request.app[STORE].live_rooms()
    page = paginate(request, rooms, key=lambda r: r.id)
    page["data"] = [r.to_json(base) for r in page["data"]]
    return web.json_response(page)


async def get_room(request: web.Request) -> web.Response:
    return web.json_response(live_room(request).to_json(request.app[BASE_URL]))


async def update_room(request: web.Request) -> web.Response:
    room = live_room(request)
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
    request.app[ROOMS].members.close_room(name, "Meeting has ended (room deleted)")
    del store.rooms[name]
    return web.json_response({"deleted": True, "name": name})


async def room_presence(request: web.Request) -> web.Response:
    room = live_room(request)
    data = request.app[ROOMS].members.presence(room.name)
    return web.json_response({"total_count": len(data), "data": data})


async def all_presence(request: web.Request) -> web.Response:
    members = request.app[ROOMS].members
    return web.json_response({name: members.presence(name) for name in members.rooms})


async def room_app_message(request: web.Request) -> web.Response:
    room = live_room(request)
    body = await json_body(request)
    if "data" not in body:
        raise bad_request("data is required")
    if len(json.dumps(body["data"]).encode()) > APP_MESSAGE_LIMIT:
        raise bad_request("data must be 4 KB or less")
    recipient = body.get("recipient", "*")
    rooms = request.app[ROOMS]
    live = rooms.members.rooms.get(room.name)
    if live is not None:
        try:
            rooms.messages.send(live, body["data"], recipient, sender="rest-api")
        except RoomError as exc:
            raise bad_request(str(exc)) from None
    return web.json_response({"sent": True})


async def room_eject(request: web.Request) -> web.Response:
    room = live_room(request)
    body = await json_body(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("ids must be a list of participant ids")
    return web.json_response({"ejectedIds": request.app[ROOMS].members.eject(room.name, ids)})
