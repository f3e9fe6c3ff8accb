"""``POST /bots/start`` for a Daily Bots profile that talks over a phone call
(``twilio_ws_voice_2024_09``, or any profile whose bot is ``worker.daily_bots.phone``): no
room; a session waiting for its Twilio call answers ``{"session_id", "websocket_url",
"twiml"}``, the TwiML connecting a call's Media Stream to it (a Twilio number's webhook
returns it). Every other profile's start is ``supervisor.http.starts.bots_start``.

Its body is checked as any ``/bots/start``'s (services, config, service_options, api_keys);
``"stt": "daily"`` and a ``room_url`` are refused, and the session's keys carry the
operator's ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` (``starts._provider_keys``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from supervisor.bots.services import redact_keys, runs_phone_pipeline
from supervisor.http import phone, starts
from supervisor.http.bodies import BotsStartBody, read_body
from supervisor.http.errors import invalid
from supervisor.http.keys import DAEMON
from supervisor.sessions.requests import PhoneStart, PhoneVia, Prepared, RequestSecrets


async def bots_start(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = await read_body(request, BotsStartBody)  # aiohttp keeps the body: starts.bots_start reads it again
    profile = starts._profile(daemon, body.bot_profile)
    if not runs_phone_pipeline(profile.kind, profile.config):
        return await starts.bots_start(request)
    if body.room_url is not None or body.token:
        raise invalid(f"room_url: profile {profile.name} talks over a Twilio call's Media Stream, not a Daily room")
    config = msgspec.to_builtins(body.config)
    keys = starts._provider_keys(daemon, profile, body.services, config, body.service_options,
                                 api_keys=body.api_keys)
    runner = {"bot_profile": profile.name, "services": dict(body.services), "config": config,
              "service_options": redact_keys(dict(body.service_options))}
    start = PhoneStart(profile=profile.name, kind=profile.kind, profile_config=dict(profile.config),
                       max_duration_s=starts._max_duration(daemon, body.max_duration, profile),
                       end_on_last_leave=profile.end_on_last_leave, via=PhoneVia.BOTS_START, provider="twilio")
    start.holding(RequestSecrets(body=runner, service_options=dict(body.service_options),
                                 api_keys=dict(body.api_keys), provider_keys=keys))

    def shape(p: Prepared) -> dict[str, Any]:
        url = phone.ws_url(daemon, request, profile.name, p)
        return {"session_id": p.session_id, "websocket_url": url, "twiml": phone.twiml(url, {"session_id": p.session_id})}

    return await starts.start_reply(request, start, shape)
