"""What the phone network's handlers find in the sandbox's app."""

from __future__ import annotations

from aiohttp import web

from sandbox.telephony.network import PhoneNetwork

NETWORK = web.AppKey("phone_network", PhoneNetwork)
