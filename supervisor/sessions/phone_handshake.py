"""The first messages of a phone call's stream: which provider sends it and which call it is.

Judged as Pipecat's ``parse_telephony_websocket`` judges them (the bot's own
``create_transport`` judges them again from the same messages, relayed to it first): the
first message, then the second if the first does not tell (Twilio's and Telnyx's
``connected`` comes before their ``start``). The supervisor never imports Pipecat, so the
rules are written out here; ``tests/e2e/test_phone_calls.py`` holds them against Pipecat's.
A stream whose first message is not a JSON object, or whose first two name no provider,
is refused before any bot sees it.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgspec

HANDSHAKE_MESSAGES = 2  # Pipecat reads at most two to detect the provider


class Provider(enum.StrEnum):
    TWILIO = "twilio"
    TELNYX = "telnyx"
    PLIVO = "plivo"
    EXOTEL = "exotel"


class CallInfo(msgspec.Struct, frozen=True):
    """The call a stream says it carries (what its ``start`` names)."""

    provider: Provider
    stream_id: str
    call_id: str
    from_number: str = ""
    to_number: str = ""
    parameters: dict[str, Any] = {}  # Twilio's <Parameter>s (customParameters)

    def view(self) -> dict[str, Any]:
        return {"provider": self.provider.value, "stream_id": self.stream_id, "call_id": self.call_id,
                "from": self.from_number, "to": self.to_number}


class HandshakeRefused(Exception):
    """The stream's first messages are refused; ``code`` is the WebSocket close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def message(data: str | bytes) -> dict[str, Any]:
    """A handshake message as a JSON object. Raises ``HandshakeRefused`` (1007) otherwise."""
    if isinstance(data, bytes):
        raise HandshakeRefused(1003, "the stream's first messages must be text (JSON), not binary")
    try:
        parsed = json.loads(data)
    except ValueError:
        raise HandshakeRefused(1007, "the stream's first message is not JSON") from None
    if not isinstance(parsed, dict):
        raise HandshakeRefused(1007, "the stream's first message is not a JSON object")
    return parsed


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def detect(msg: dict[str, Any]) -> CallInfo | None:
    """The call ``msg`` starts, if it is a provider's start message (Pipecat's rules, in its
    order: Twilio, Telnyx, Plivo, Exotel); None for anything else (``connected``)."""
    start = msg.get("start")
    if not isinstance(start, dict):
        return None
    if msg.get("event") == "start" and "streamSid" in start and "callSid" in start:
        params = start.get("customParameters")
        params = params if isinstance(params, dict) else {}
        return CallInfo(Provider.TWILIO, _text(start["streamSid"]), _text(start["callSid"]),
                        _text(params.get("from_number")), _text(params.get("to_number")), params)
    if "stream_id" in msg and "call_control_id" in start:
        return CallInfo(Provider.TELNYX, _text(msg["stream_id"]), _text(start["call_control_id"]),
                        _text(start.get("from")), _text(start.get("to")))
    if "streamId" in start and "callId" in start:
        return CallInfo(Provider.PLIVO, _text(start["streamId"]), _text(start["callId"]))
    if msg.get("event") == "start" and "stream_sid" in start and "call_sid" in start and "account_sid" in start:
        return CallInfo(Provider.EXOTEL, _text(start["stream_sid"]), _text(start["call_sid"]),
                        _text(start.get("from")), _text(start.get("to")))
    return None


def is_stop(text: str) -> bool:
    """Whether a message is the provider's ``stop`` (the call hung up): Twilio's, Telnyx's,
    Plivo's and Exotel's all say ``"event": "stop"``."""
    if '"stop"' not in text:  # media payloads are base64: no quotes; most messages end here
        return False
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("event") == "stop"
