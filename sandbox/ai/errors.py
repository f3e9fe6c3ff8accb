"""OpenAI's error body, which the OpenAI client turns into its typed exceptions."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def openai_error(status: int, message: str, param: str | None = None) -> web.Response:
    """``{"error": {"message", "type", "param", "code"}}`` with ``status``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": None}},
                             status=status)


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the 400 to answer when it is not one."""
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return openai_error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    return body
