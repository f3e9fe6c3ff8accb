"""The HTTP API's request bodies as msgspec Structs: the views decode into them and the
OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any

import msgspec


class ServiceConfigOption(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    value: Any


class ServiceConfig(msgspec.Struct, forbid_unknown_fields=True):
    service: str
    options: list[ServiceConfigOption] = []


class BotsStartBody(msgspec.Struct, forbid_unknown_fields=True):
    """Daily Bots' ``/bots/start`` body."""

    bot_profile: str
    max_duration: int | None = None
    services: dict[str, str] = {}
    config: list[ServiceConfig] = []
    service_options: dict[str, dict[str, Any]] = {}
    api_keys: dict[str, str] = {}  # accepted for compatibility; never logged or stored
    room_url: str | None = None
    token: str | None = None
    body: Any = None


class PipecatStartBody(msgspec.Struct, forbid_unknown_fields=True):
    """Pipecat Cloud's ``/start`` body, plus ``profile``."""

    createDailyRoom: bool = True
    dailyRoomProperties: dict[str, Any] = {}
    dailyMeetingTokenProperties: dict[str, Any] = {}
    body: Any = None
    profile: str = "stream"


class DialinWebhook(msgspec.Struct):
    """Daily's dial-in webhook (``sipHeaders`` optional); unknown fields are ignored."""

    From: str
    To: str
    callId: str
    callDomain: str
    sipHeaders: dict[str, str] | None = None


class AppMessageBody(msgspec.Struct, forbid_unknown_fields=True):
    message: Any
    participant_id: str | None = None
