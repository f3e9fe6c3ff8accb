"""Daily's meeting-token endpoints: issue one, and read one back (``/v1/meeting-tokens``)."""

from __future__ import annotations

from aiohttp import web

from sandbox.rest.errors import bad_request
from sandbox.rest.keys import SIGNER
from sandbox.rest.params import json_body
from sandbox.tokens import TokenError, validate_properties


async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    signer = request.app[SIGNER]
    try:
        props = validate_properties(body.get("properties", {}), signer.clock())
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response({"token": signer.issue(props)})


async def validate_token(request: web.Request) -> web.Response:
    try:
        props = request.app[SIGNER].properties(request.match_info["token"])
    except TokenError as exc:
        raise bad_request(str(exc)) from None
    return web.json_response(props)
