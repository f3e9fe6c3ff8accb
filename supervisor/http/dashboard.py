"""The operator's dashboard: one static page (no build step, nothing fetched from elsewhere)
and the one JSON route it reads that the API had not: the workers.

The page and its assets are open routes (they hold no data); everything the page shows comes
from the data routes, which ask for the bearer key like any other client's requests.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from aiohttp import web

from supervisor.http.errors import ApiError, not_found
from supervisor.http.keys import DAEMON

# Shipped inside the package, read once: the page must never depend on the working directory.
STATIC = resources.files("supervisor.http") / "dashboard_static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def load_assets(folder: Traversable) -> dict[str, tuple[bytes, str]]:
    """The page's files in ``folder`` by name, with their media types; {} when it is absent
    (an install without its package data: the rest of the API still starts)."""
    if not folder.is_dir():
        return {}
    assets = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


ASSETS = load_assets(STATIC)


def _asset_response(name: str) -> web.Response:
    if not ASSETS:
        raise ApiError(500, "server-error", "the dashboard's files were not installed with callfleet "
                                            "(supervisor/http/dashboard_static is missing from the package)")
    body, content_type = ASSETS[name]
    # no-cache: a browser asks again each load, so an upgraded supervisor's page is picked up at once
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers={"Cache-Control": "no-cache"})


async def page(request: web.Request) -> web.Response:
    """``GET /dashboard``: the page."""
    return _asset_response("index.html")


async def asset(request: web.Request) -> web.Response:
    """``GET /dashboard/{asset}``: a file the page loads; 404 for any name not shipped."""
    name = request.match_info["asset"]
    if ASSETS and name not in ASSETS:
        raise not_found(f"/dashboard/{name} does not exist")
    return _asset_response(name)


async def workers(request: web.Request) -> web.Response:
    """``GET /workers``: this node's worker processes as ``ctl workers`` shows them."""
    daemon = request.app[DAEMON]
    return web.json_response({"node_id": daemon.registry.node_id, "data": daemon.workers()})
