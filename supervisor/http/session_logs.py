"""``GET /sessions/{id}/logs``: a session's log as NDJSON, one structlog JSON line per line.

``?tail=N`` gives the last N lines; ``?follow=1`` gives the kept lines, then each new line
as it is written, and ends once the session has ended. In a cluster the node whose
sessions.db holds the log answers (``forward.logs_node``), through whichever node was asked.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from supervisor.http import forward
from supervisor.http.errors import invalid, not_found
from supervisor.http.keys import DAEMON
from supervisor.session_logs import Follower, marker

NDJSON = "application/x-ndjson"
MAX_TAIL = 1_000_000
FOLLOW_WAKE_S = 1.0  # a follower also looks at the session's state this often


def _tail(request: web.Request) -> int | None:
    text = request.query.get("tail")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_TAIL:
        raise invalid(f"tail: expected a whole number of lines from 1 to {MAX_TAIL}, got {text!r}")
    return int(text)


def _follow(request: web.Request) -> bool:
    text = request.query.get("follow", "0")
    if text not in ("0", "1", "true", "false"):
        raise invalid(f"follow: expected 1 or 0, got {text!r}")
    return text in ("1", "true")


async def session_logs(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    sid = request.match_info["id"]
    tail, follow = _tail(request), _follow(request)
    node = await forward.logs_node(daemon, request, sid)
    if node is not None:
        return await forward.relay_streamed(daemon, request, node)
    if daemon.registry.describe(sid) is None:
        raise not_found(f"session {sid} not found")
    book = daemon.session_logs
    session = daemon.registry.get(sid) if follow else None
    if session is None:  # not followed, or already ended: what is kept is all there is
        lines = book.read(sid, tail=tail)
        return web.Response(body="".join(line + "\n" for _, line in lines), content_type=NDJSON)
    reply = web.StreamResponse(headers={"Cache-Control": "no-store"})
    reply.content_type = NDJSON
    with book.follow(sid) as follower, contextlib.suppress(ConnectionResetError):
        await reply.prepare(request)  # the headers go at once, even while the log is empty
        last = await _write(reply, book.read(sid, tail=tail), -1)
        while not session.finished.is_set() and not follower.cut_off:
            await _until(follower, session.finished)
            last = await _write(reply, _taken(follower), last)
        if follower.cut_off:
            await reply.write((marker(sid, "this follower fell too far behind; read the log again") + "\n").encode())
        else:
            await _write(reply, book.read(sid, after=last), last)  # the lines written as it ended
        await reply.write_eof()
    return reply


async def _until(follower: Follower, finished: asyncio.Event) -> None:
    """Until a new line or the session's end (or ``FOLLOW_WAKE_S``)."""
    waits = {asyncio.ensure_future(finished.wait()), asyncio.ensure_future(follower.wait(FOLLOW_WAKE_S))}
    try:
        await asyncio.wait(waits, timeout=FOLLOW_WAKE_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def _taken(follower: Follower) -> list[tuple[int, str]]:
    lines = list(follower.lines)
    follower.lines.clear()
    return lines


async def _write(reply: web.StreamResponse, lines: list[tuple[int, str]], last: int) -> int:
    """Write the lines after seq ``last`` (a marker, seq -1, only before any line); returns
    the last seq written."""
    fresh = [line for seq, line in lines if seq > last or (seq < 0 and last < 0)]
    if fresh:
        await reply.write("".join(line + "\n" for line in fresh).encode())
    return max([last, *(seq for seq, _ in lines)])
