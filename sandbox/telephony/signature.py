"""Twilio's request signature, ``X-Twilio-Signature``, as its webhooks carry it.

base64(HMAC-SHA1(auth token, the full URL requested + every form parameter's name and
value, sorted by name, concatenated)). A WebSocket handshake (Media Streams) is signed the
same way with no parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

HEADER = "X-Twilio-Signature"


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Twilio-Signature`` of a request to ``url`` with form ``params``."""
    # Sorted by name then value: a repeated name is signed in value order, as Twilio does.
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    """Whether ``signature`` is the one Twilio would send (compared in constant time)."""
    return hmac.compare_digest(sign(auth_token, url, params), signature)
