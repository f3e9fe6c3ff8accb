"""Daily's recordings endpoints: list, get, delete, an access link, and the download it
points at (signed, and valid until its ``expires`` on the store's clock)."""

from __future__ import annotations

import hmac

from aiohttp import web

from sandbox.rest.errors import DailyError, bad_request, not_found
from sandbox.rest.keys import BASE_URL, SIGNER, STORE
from sandbox.rest.params import int_param, paginate
from sandbox.store import Recording, RecordingStatus


async def list_recordings(request: web.Request) -> web.Response:
    recs = sorted(request.app[STORE].recordings.values(), key=lambda r: -r.seq)
    room_name = request.query.get("room_name")
    if room_name:
        recs = [r for r in recs if r.room_name == room_name]
    page = paginate(request, recs, key=lambda r: r.id)
    page["data"] = [r.to_json() for r in page["data"]]
    return web.json_response(page)


def _recording(request: web.Request) -> Recording:
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
    return app[SIGNER].mac(f"{rec_id}:{expires}")


async def recording_access_link(request: web.Request) -> web.Response:
    rec = _recording(request)
    if rec.status is not RecordingStatus.FINISHED:
        raise bad_request(f"recording {rec.id} is {rec.status.value}")
    valid_for = int_param(request, "valid_for_secs", 3600, 900, 43200)
    expires = int(request.app[STORE].clock()) + valid_for
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
    expired = request.app[STORE].clock() > expires
    if not hmac.compare_digest(sig, _link_signature(request.app, rec.id, expires)) or expired:
        raise DailyError(403, "forbidden-error", "link expired or not valid")
    if rec.path is None or not rec.path.exists():
        raise not_found("recording file is gone")
    return web.FileResponse(rec.path, headers={"Content-Type": "audio/wav"})
