"""What a REST request carries: its JSON body, integer query parameters, Daily's pagination."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.rest.errors import DailyError, bad_request


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); raises ``DailyError`` (400) for
    anything else."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DailyError(400, "json-parsing-error", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """Query parameter ``name`` as an int in ``lo..hi``; raises ``DailyError`` (400)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo} and {hi}")
    return value


def paginate(request: web.Request, items: list[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    """Daily's pagination over ``items`` (already newest first); raises ``DailyError`` (400)
    for a bad ``limit`` or a cursor that is not there."""
    limit = int_param(request, "limit", 100, 1, 100)
    after, before = request.query.get("starting_after"), request.query.get("ending_before")
    ids = [key(i) for i in items]
    if after is not None:
        if after not in ids:
            raise bad_request(f"starting_after {after} not found")
        page = items[ids.index(after) + 1 :][:limit]
    elif before is not None:
        if before not in ids:
            raise bad_request(f"ending_before {before} not found")
        page = items[: ids.index(before)][-limit:]
    else:
        page = items[:limit]
    return {"total_count": len(items), "data": page}
