"""Typed application keys (no globals)."""

from typing import Any

from aiohttp import web

DAEMON: web.AppKey[Any] = web.AppKey("daemon")
