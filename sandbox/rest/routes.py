"""Every REST endpoint of the sandbox and the handler that answers it."""

from __future__ import annotations

from aiohttp import web

from sandbox.rest import control, dialin, recordings, rooms, tokens


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/v1/rooms", rooms.create_room)
    r.add_get("/v1/rooms", rooms.list_rooms)
    r.add_get("/v1/rooms/{name}", rooms.get_room)
    r.add_post("/v1/rooms/{name}", rooms.update_room)
    r.add_delete("/v1/rooms/{name}", rooms.delete_room)
    r.add_get("/v1/rooms/{name}/presence", rooms.room_presence)
    r.add_post("/v1/rooms/{name}/send-app-message", rooms.room_app_message)
    r.add_post("/v1/rooms/{name}/eject", rooms.room_eject)
    r.add_get("/v1/presence", rooms.all_presence)
    r.add_post("/v1/meeting-tokens", tokens.create_token)
    r.add_get("/v1/meeting-tokens/{token}", tokens.validate_token)
    r.add_get("/v1/recordings", recordings.list_recordings)
    r.add_get("/v1/recordings/{id}", recordings.get_recording)
    r.add_delete("/v1/recordings/{id}", recordings.delete_recording)
    r.add_get("/v1/recordings/{id}/access-link", recordings.recording_access_link)
    r.add_get("/v1/recordings/{id}/download", recordings.recording_download)
    r.add_post("/v1/dialin/pinlessCallUpdate", dialin.pinless_call_update)
    r.add_get("/v1/sandbox/faults", control.get_faults)
    r.add_post("/v1/sandbox/faults", control.set_faults)
    r.add_post("/v1/sandbox/dialin", dialin.simulate_dialin)
    r.add_post("/v1/sandbox/hangup", control.hang_up)
    r.add_post("/v1/sandbox/dtmf", control.press_dtmf)
    r.add_get("/v1/sandbox/rooms/{name}/participants", control.inspect_room)
    r.add_get("/v1/sandbox/stats", control.sandbox_stats)
    r.add_get("/_sandbox/rooms/{name}", control.room_lookup)
