"""What the REST handlers find in the app: typed keys, set by ``Sandbox.make_app``."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from sandbox.limits import Faults, TokenBuckets
from sandbox.rooms.server import RoomServer
from sandbox.store import Store
from sandbox.tokens import TokenSigner

STORE = web.AppKey("store", Store)
ROOMS = web.AppKey("rooms", RoomServer)
SIGNER = web.AppKey("signer", TokenSigner)
FAULTS = web.AppKey("faults", Faults)
BUCKETS = web.AppKey("buckets", TokenBuckets)
API_KEY = web.AppKey("api_key", str)
BASE_URL = web.AppKey("base_url", str)
HTTP = web.AppKey("http", aiohttp.ClientSession)
TASKS = web.AppKey("tasks", set[asyncio.Task[None]])  # webhooks being posted
DIALIN_HMAC_SECRET = web.AppKey("dialin_hmac_secret", bytes)  # the domain's pinless `hmac`, decoded; b"": unsigned
