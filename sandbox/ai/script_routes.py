"""``GET``/``POST …/script``: the transcript script over HTTP, for a test or a phone in
another process.

``POST {"transcripts": ["…", …]}`` replaces what is scripted; with ``"append": true`` it
adds to the end instead. Both answer, as ``GET`` does, ``{"transcripts": [what is still
to be heard, in order]}``.
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.ai.state import AI


async def get_script(request: web.Request) -> web.Response:
    return web.json_response({"transcripts": request.app[AI].script.pending()})


async def set_script(request: web.Request) -> web.Response:
    script = request.app[AI].script
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    texts = body.get("transcripts") if isinstance(body, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return web.json_response({"error": "invalid-request-error",
                                  "info": "body must be {\"transcripts\": [strings], \"append\"?: bool}"},
                                 status=400)
    if body.get("append") is True:
        script.push(*texts)
    else:
        script.replace(texts)
    return web.json_response({"transcripts": script.pending()})
