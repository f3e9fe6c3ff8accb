"""The record of every request the stand-ins answered, for tests to read."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import msgspec
from aiohttp import web

LOG_SIZE = 1000  # a long run's chat bodies repeat the whole conversation: keep the recent ones


class LoggedRequest(msgspec.Struct, frozen=True):
    """One request: its path, its body (JSON as sent; a form's fields with the file's size in
    place of its bytes; a socket's query), its ``Authorization`` header, and when it arrived
    (``time.monotonic()``, which every process on the machine shares)."""

    method: str
    path: str
    body: Any
    authorization: str | None
    at: float


class RequestLog:
    """The last ``LOG_SIZE`` requests, oldest first."""

    def __init__(self) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=LOG_SIZE)

    def record(self, request: web.Request, body: Any) -> None:
        self._entries.append(LoggedRequest(method=request.method, path=request.path, body=body,
                                           authorization=request.headers.get("Authorization"),
                                           at=time.monotonic()))

    def entries(self, path_suffix: str = "") -> list[LoggedRequest]:
        """The requests whose path ends with ``path_suffix`` (all of them by default)."""
        return [e for e in self._entries if e.path.endswith(path_suffix)]
