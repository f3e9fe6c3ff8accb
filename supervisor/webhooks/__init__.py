"""Webhooks (``[webhooks] url`` and ``secret_env``): ``session.started`` when a session's bot
has joined its call and ``session.ended`` when the session is over, POSTed as signed JSON.

``events`` builds the bodies, ``signing`` the Standard Webhooks headers, ``delivery`` one
event's attempts and back-off, ``sender`` the queue in the daemon's loop. ``sender_for``
is where the daemon starts: it reads the secret from the operator's environment.
"""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.config import WebhooksSection
from supervisor.webhooks.sender import WebhookSender
from supervisor.webhooks.signing import key_from

__all__ = ["WebhookSender", "sender_for"]


def sender_for(settings: WebhooksSection, environ: Mapping[str, str]) -> WebhookSender | None:
    """The sender ``settings`` ask for (None without ``url``). Raises ValueError naming
    ``webhooks.secret_env`` when its variable is unset or is no usable secret; the message
    never holds the secret."""
    if settings.url is None:
        return None
    assert settings.secret_env is not None  # config._check_webhooks: required with url
    secret = environ.get(settings.secret_env, "")
    if not secret.strip():
        raise ValueError(f"webhooks.secret_env: ${settings.secret_env} is not set in the supervisor's environment")
    try:
        key = key_from(secret)
    except ValueError as exc:
        raise ValueError(f"webhooks.secret_env: ${settings.secret_env} is not a webhook secret "
                         f"(whsec_ and base64, as Standard Webhooks' secrets): {exc}") from None
    return WebhookSender(settings, key)
