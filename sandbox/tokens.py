"""Meeting tokens: JWT (HS256) signed with a per-sandbox secret, Daily's property names."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from hashlib import sha256
from typing import Any

import jwt

# Daily's token properties and the short claim names they travel under.
CLAIMS = {
    "room_name": "r",
    "is_owner": "o",
    "user_name": "u",
    "user_id": "ud",
    "exp": "exp",
    "nbf": "nbf",
    "eject_at_token_exp": "ejt",
    "eject_after_elapsed": "eje",
    "enable_recording": "er",
    "start_audio_off": "sao",
    "start_video_off": "svo",
    "permissions": "p",
}
PROPERTY_TYPES: dict[str, tuple[type, ...]] = {
    "room_name": (str,),
    "is_owner": (bool,),
    "user_name": (str,),
    "user_id": (str,),
    "exp": (int, float),
    "nbf": (int, float),
    "eject_at_token_exp": (bool,),
    "eject_after_elapsed": (int,),
    "enable_recording": (str,),
    "start_audio_off": (bool,),
    "start_video_off": (bool,),
    "permissions": (dict,),
}


class TokenError(Exception):
    """A token that does not allow the join; the text is what Daily would say."""


class TokenSigner:
    """Issues and reads the sandbox's meeting tokens. ``clock`` gives wall-clock seconds
    (``time.time`` unless a test moves time by hand): ``exp`` and ``nbf`` are judged on it."""

    def __init__(self, secret: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret or secrets.token_hex(32)
        self.clock = clock

    def issue(self, properties: dict[str, Any]) -> str:
        """Sign ``properties`` (already validated) into a token."""
        claims = {CLAIMS[k]: v for k, v in properties.items() if v is not None}
        claims["iat"] = int(self.clock())
        claims["d"] = "sandbox"
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def mac(self, message: str) -> str:
        """HMAC-SHA256 of ``message`` under the sandbox's secret, hex (download links)."""
        return hmac.new(self._secret.encode(), message.encode(), sha256).hexdigest()

    def properties(self, token: str) -> dict[str, Any]:
        """The token's properties. Raises ``TokenError`` for a forged, malformed,
        expired or not-yet-valid token."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise TokenError("Meeting token is not valid") from None
        props = {name: claims[short] for name, short in CLAIMS.items() if short in claims}
        now = self.clock()
        if "exp" in props and now >= props["exp"]:
            raise TokenError("Meeting token has expired")
        if "nbf" in props and now < props["nbf"]:
            raise TokenError("Meeting token is not yet valid")
        return props


def validate_properties(props: Any, now: float) -> dict[str, Any]:
    """Check a ``POST /meeting-tokens`` ``properties`` object at ``now`` (wall-clock
    seconds); raises ValueError(info)."""
    if not isinstance(props, dict):
        raise ValueError("properties must be an object")
    for key, value in props.items():
        if key not in PROPERTY_TYPES:
            raise ValueError(f"{key} is not a valid token property")
        types = PROPERTY_TYPES[key]
        if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
            raise ValueError(f"{key} must be of type {types[0].__name__}")
    if "exp" in props and props["exp"] <= now:
        raise ValueError("exp must be in the future")
    return props
