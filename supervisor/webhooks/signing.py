"""Webhook signatures in the shape of Standard Webhooks (https://www.standardwebhooks.com).

Every POST carries three headers:

- ``webhook-id``: the event's id (the body's ``id``); the same on every retry, and the same
  from every node of a cluster, so a receiver that remembers ids drops a repeat.
- ``webhook-timestamp``: when this attempt was signed, in whole seconds since the epoch.
- ``webhook-signature``: ``v1,`` followed by base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")),
  ``body`` being the request's raw bytes as received, and ``key`` the secret's bytes: the
  text after the ``whsec_`` prefix, base64-decoded.

A receiver verifies: the signature over the raw body (compared in constant time), and a
timestamp close to its own clock (Standard Webhooks suggests 5 minutes) against replays.
The official ``standardwebhooks`` libraries do both when given the same ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"
MIN_KEY_BYTES = 16  # a shorter key is a password, not a secret


def key_from(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix may be left out).

    Raises ValueError, never quoting the secret, when it is not base64 or decodes to fewer
    than ``MIN_KEY_BYTES`` bytes.
    """
    text = secret.strip().removeprefix(PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 after the optional whsec_ prefix") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def signature(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one attempt's POST, signature included."""
    return {
        "content-type": "application/json",
        "user-agent": "callfleet-webhooks",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, event_id, timestamp, body),
    }
