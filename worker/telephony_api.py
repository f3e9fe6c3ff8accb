"""Where a hosted bot's telephony serializer hangs its call up.

Pipecat's ``TwilioFrameSerializer`` ends the call through Twilio's REST API when its
pipeline ends (``Calls/{sid}.json``, ``Status=completed``) at ``https://api.twilio.com``
unless it is given ``base_url`` -- and ``create_transport`` never gives one. A session
whose supervisor names another Twilio API (``[telephony] twilio_api_url``: the sandbox's
phone network, or a Twilio-compatible service) runs its bot with that URL as the
serializer's default ``base_url``: a bot that passes its own keeps it. The default is set
in the bot's task's context only, so it follows that session and nothing else.
"""

from __future__ import annotations

import contextvars
import functools
from typing import Any

_twilio_base_url: contextvars.ContextVar[str | None] = contextvars.ContextVar("twilio_base_url", default=None)
_installed = False


def _install() -> None:
    """Give ``TwilioFrameSerializer`` the session's default ``base_url`` (once per process)."""
    global _installed
    if _installed:
        return
    try:
        from pipecat.serializers.twilio import TwilioFrameSerializer
    except ImportError:
        return  # no Pipecat: no serializer to point anywhere
    original = TwilioFrameSerializer.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        # base_url is the seventh positional parameter (stream_sid, call_sid, account_sid,
        # auth_token, region, edge, base_url): only a keyword or a short call can lack it.
        if len(args) < 7 and kwargs.get("base_url") is None and (default := _twilio_base_url.get()):
            kwargs["base_url"] = default
        original(self, *args, **kwargs)

    TwilioFrameSerializer.__init__ = init  # type: ignore[method-assign]
    _installed = True


def set_for_session(context: contextvars.Context, api_urls: dict[str, str]) -> None:
    """In ``context`` (the bot's task's), the providers' API base URLs the session was given."""
    twilio = api_urls.get("twilio")
    if twilio:
        _install()
        context.run(_twilio_base_url.set, twilio.rstrip("/"))
