"""The HTTP API's request bodies as msgspec Structs: the views decode into them (400 naming
the field, 413 past 1 MB) and the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from supervisor.config import sentence, split_validation_error
from supervisor.http.errors import ApiError, invalid

B = TypeVar("B")


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
    api_keys: dict[str, str] = {}  # provider -> the caller's own key, as service_options.<p>.api_key; never stored
    rtvi_client_version: str | None = None  # what Daily's RTVI client examples forward; informational only
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
    # Pipecat Cloud's: "daily" (the default) or "websocket", a phone call (supervisor.http.phone)
    transport: str | None = None


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


async def read_body(request: web.Request, struct: type[B]) -> B:
    """Read, decode and validate a JSON body; raises a 400 ``ApiError`` naming the field,
    413 past 1 MB."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "invalid-request-error", "request body is larger than 1 MB") from None
    return decode_body(raw, struct)


def decode_body(raw: bytes, struct: type[B]) -> B:
    """Decode and validate a JSON body; raises a 400 ``ApiError`` naming the field."""
    try:
        return msgspec.json.decode(raw or b"{}", type=struct)
    except msgspec.ValidationError as exc:
        raise invalid(field_message(str(exc))) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # bad UTF-8 inside a string is the latter
        raise invalid(f"body is not valid JSON: {exc}") from None


def field_message(text: str) -> str:
    """msgspec's validation error as the API says it: "Expected `int`, got `str` - at
    `$.max_duration`" -> "max_duration: expected int, got str"."""
    path, what = split_validation_error(text)
    return f"{path}: {sentence(what)}" if path else what.replace("`", "")
