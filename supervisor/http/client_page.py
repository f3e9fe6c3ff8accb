"""The pages a person talks to a bot from, in a browser, over Pipecat's SmallWebRTC.

``GET /talk``: callfleet's own page (``talk_static/``, no build step): it works offline and
asks for the bearer key when the supervisor has one (kept in the tab's sessionStorage).

``GET /client``: Pipecat's prebuilt SmallWebRTC web client, as its development runner serves it.

The page is the installed ``pipecat-ai-small-webrtc-prebuilt`` package's built files, served
as they are (no CDN, nothing fetched). Its own flow talks to callfleet unchanged: ``POST
/start`` with ``transport: "webrtc"`` (``supervisor.http.webrtc``), then the offer to
``/sessions/{sessionId}/api/offer``. ``/client/?profile=NAME`` picks the profile its start
runs (else ``[webrtc] default_profile``). The page is open (no bearer key: it holds none and
is given none); its ``/start`` needs the key like any start, so with ``api_key_env`` set it
only works through a proxy that adds it.

The prebuilt page is not offline: its transport's device handling (daily-js's
DailyMediaManager) loads Daily's call-machine bundle from c.daily.co before it starts a
session, as it does under Pipecat's own runner. With no route to it, use ``/talk``.

The package is located, never imported: its module imports FastAPI, which the supervisor
does not need.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

from supervisor.http.errors import ApiError, not_found

PACKAGE = "pipecat_ai_small_webrtc_prebuilt"
TALK = Path(__file__).with_name("talk_static")
TALK_FILES = {"talk.js": "text/javascript"}


def dist_dir() -> Path | None:
    """The prebuilt client's built files, or None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    dist = Path(next(iter(spec.submodule_search_locations))) / "client" / "dist"
    return dist if (dist / "index.html").is_file() else None


def _file(relative: str) -> web.FileResponse:
    dist = dist_dir()
    if dist is None:
        raise ApiError(503, "service-unavailable", f"the prebuilt web client is not installed: install {PACKAGE} "
                                                   f"(pipecat-ai-small-webrtc-prebuilt)")
    root = dist.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise not_found(f"no file {relative!r} in the web client")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def client_redirect(request: web.Request) -> web.StreamResponse:
    """``GET /client``: to ``/client/`` (the page's assets are relative to it), query kept."""
    # A plain 302: the error middleware turns a raised HTTPFound into JSON without its Location.
    query = request.rel_url.raw_query_string
    return web.Response(status=302, headers={"Location": "/client/" + (f"?{query}" if query else "")})


async def client_index(request: web.Request) -> web.StreamResponse:
    """``GET /client/``: the page."""
    return _file("index.html")


async def client_asset(request: web.Request) -> web.StreamResponse:
    """``GET /client/{path}``: the page's scripts, styles, fonts and icons."""
    return _file(request.match_info["path"])


async def talk_page(request: web.Request) -> web.StreamResponse:
    """``GET /talk``: callfleet's own page (offline)."""
    return web.FileResponse(TALK / "talk.html", headers={"Cache-Control": "no-cache"})


async def talk_asset(request: web.Request) -> web.StreamResponse:
    """``GET /talk/{asset}``: its script."""
    name = request.match_info["asset"]
    if name not in TALK_FILES:
        raise not_found(f"no file {name!r} in the talk page")
    return web.FileResponse(TALK / name, headers={"Cache-Control": "no-cache", "Content-Type": TALK_FILES[name]})
