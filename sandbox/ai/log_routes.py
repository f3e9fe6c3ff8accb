"""``GET …/requests``: the request log over HTTP, for a test whose sandbox runs in another
process. ``?path=SUFFIX`` keeps the requests whose path ends with it. The log holds the
``Authorization`` each request carried, so a test can tell which key reached a provider:
the sandbox listens on loopback only, and every key it sees is a stand-in's."""

from __future__ import annotations

import msgspec
from aiohttp import web

from sandbox.ai.state import AI


async def get_requests(request: web.Request) -> web.Response:
    entries = request.app[AI].log.entries(request.query.get("path", ""))
    return web.Response(body=msgspec.json.encode({"requests": entries}), content_type="application/json")
