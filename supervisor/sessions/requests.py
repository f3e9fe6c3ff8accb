"""What is asked of a session: the validated start request, what the start call answers
with, the errors a caller of a session sees, and what the session's bot is given from the
request (a hosted bot's ``runner_args.body``, a stream engine's first message)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.messages import AudioSettings
from supervisor.sessions.room import RoomRequest


class SessionGone(Exception):
    """The session has finished; the request could not be carried out."""


class CommandRefused(Exception):
    """The worker refused a command (the call client's error text)."""


@dataclass
class StartRequest:
    """A validated request to start a bot session (built by the HTTP layer)."""

    profile: str
    kind: str
    bot_config: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold BYO keys: kept out of reprs
    max_duration_s: int = 7200
    room_url: str | None = None  # an existing room: not ours to delete
    bot_token: str | None = None  # the caller's token for the bot, with room_url
    room_properties: dict[str, Any] = field(default_factory=dict)
    room_privacy: str = "private"
    user_token_properties: dict[str, Any] = field(default_factory=dict)
    bot_name: str = "bot"
    sip: dict[str, Any] | None = None  # dial-in room SIP settings
    end_on_last_leave: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # body, dial-in settings, … kept on the record
    # runner_args.body as given (BYO keys included): held in memory for the worker, never on the record
    runner_body: dict[str, Any] | None = field(default=None, repr=False)
    # A built-in Daily Bots pipeline's keys and settings (variable name -> value), handed to its
    # worker in RunBot.provider_keys: in memory only, never on the record or in runner_args.body.
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def pooled(self) -> bool:
        """A plain session that a pre-created room with default tokens can serve."""
        return not (self.room_url or self.room_properties or self.user_token_properties or self.sip
                    or self.bot_name != "bot")

    def room_request(self) -> RoomRequest:
        return RoomRequest(self.room_url, self.room_properties, self.room_privacy, self.user_token_properties,
                           self.bot_name, self.sip, self.bot_token, self.pooled)


@dataclass
class Prepared:
    """What the start call answers with once the room and tokens exist."""

    session_id: str
    room_url: str
    user_token: str
    stream_token: str


class InvalidStart(Exception):
    """The request's own data was refused (a token for another room): a 400, not a 502."""


def runner_body(request: StartRequest, daily_key: str, daily_proxy_url: str) -> Any:
    """``runner_args.body`` for a hosted Pipecat bot (SPEC §4): the Daily Bots fields as
    given for ``/bots/start``; Pipecat's ``DailyDialinRequest`` for a phone call (with the
    session's proxy key, never the account's); the request's ``body`` for ``/start``."""
    extra = request.extra
    if request.runner_body is not None:
        return request.runner_body
    if extra.get("dialin_settings") is not None:
        return {"dialin_settings": extra["dialin_settings"], "daily_api_key": daily_key,
                "daily_api_url": daily_proxy_url}
    if extra.get("daily_bots") is not None:
        return extra["daily_bots"]
    return extra.get("body")


def stream_config(session_id: str, request: StartRequest, room_url: str | None,
                  audio: AudioSettings) -> dict[str, Any]:
    """The first message a stream engine receives."""
    return {
        "type": "config",
        "session_id": session_id,
        "profile": request.profile,
        "room_url": room_url,
        "services": request.bot_config.get("services", {}),
        "config": request.bot_config.get("config", []),
        "service_options": request.bot_config.get("service_options", {}),
        "body": request.extra.get("body"),
        "dialin_settings": request.extra.get("dialin_settings"),
        "audio": {"sample_rate": audio.sample_rate, "channels": audio.channels, "frame_ms": audio.frame_ms},
    }
