"""What a start asks of a session, one type per origin, and what the start call answers.

Each origin of a start is its own Struct, tagged by ``origin``:

- ``BotsStart``: ``POST /bots/start``, Daily Bots' API (your own bot, or a built-in
  Daily Bots pipeline with its services);
- ``PipecatStart``: ``POST /start``, Pipecat Cloud's API;
- ``DialinStart``: ``POST /dialin``, Daily's webhook for a phone call to one of its numbers;
- ``PhoneStart``: a phone call over a WebSocket instead of a Daily room -- ``POST /start``
  with ``transport: "websocket"`` (Pipecat Cloud's), ``POST /telephony/twilio`` (Twilio's
  voice webhook), or a Daily Bots profile whose transport is the phone's.
- ``WebRTCStart``: a browser over Pipecat's SmallWebRTC instead of a Daily room --
  ``POST /start`` with ``transport: "webrtc"`` (Pipecat Cloud's and its development runner's).

A new origin (a phone call the bot places) is one more Struct here. Each one knows what its
session's room is, what its bot is given (its configuration, a hosted bot's
``runner_args.body``, a stream engine's first message) and what its record keeps.

A request's secrets are not fields. The caller's own provider keys, a built-in pipeline's
keys, a body as given and a meeting token for the bot sit in ``RequestSecrets``, which
the request holds beside its fields, outside what any encoder reads. So no record, view,
event or log line built from a request can carry one. They travel in memory to the
session's worker, and the session registers them with the scrubber while it lives.
"""

from __future__ import annotations

import enum
from typing import Any, Self

import msgspec

from callfleet import scrub
from protocol.messages import AudioSettings
from supervisor.bots.services import redact_keys
from supervisor.sessions.room import RoomRequest


class InvalidStart(Exception):
    """The request's own data was refused (a token for another room): a 400, not a 502."""


class Prepared(msgspec.Struct):
    """What the start call answers with once the room and tokens exist (for a phone call:
    no room, and the one-time token of its WebSocket URL)."""

    session_id: str
    room_url: str
    user_token: str
    stream_token: str
    ws_token: str = ""


class RequestSecrets:
    """What a start request carries that is never written anywhere: kept in memory, handed
    to the session's bot, and registered with the scrubber while the session lives. Not a
    Struct, so nothing encodes it; its repr names no value."""

    __slots__ = ("api_keys", "body", "bot_token", "provider_keys", "service_options")

    def __init__(self, *, body: Any = None, service_options: dict[str, dict[str, Any]] | None = None,
                 api_keys: dict[str, str] | None = None, provider_keys: dict[str, str] | None = None,
                 bot_token: str | None = None) -> None:
        self.body = body  # the caller's body as given: it may name its own keys
        self.service_options = service_options or {}  # Daily Bots' service_options, their api_keys included
        # Daily Bots' top-level api_keys, provider -> the caller's own key (as service_options.<p>.api_key is)
        self.api_keys = api_keys or {}
        # A built-in Daily Bots pipeline's keys and settings (variable name -> value), for its
        # worker's RunBot.provider_keys; never in runner_args.body.
        self.provider_keys = provider_keys or {}
        self.bot_token = bot_token  # a meeting token the caller gave for the bot, with its own room

    def __repr__(self) -> str:
        return "RequestSecrets(<in memory only>)"


NO_SECRETS = RequestSecrets()


class StartRequest(msgspec.Struct, kw_only=True, dict=True, tag_field="origin"):
    """What every start asks for, whatever its origin (validated by the HTTP layer)."""

    profile: str
    kind: str
    profile_config: dict[str, Any] = {}  # the profile's bot configuration
    max_duration_s: int = 7200
    end_on_last_leave: bool = True

    def holding(self, secrets: RequestSecrets) -> Self:
        """This request, holding ``secrets`` beside its fields (never encoded)."""
        self.__dict__["_secrets"] = secrets
        return self

    @property
    def secrets(self) -> RequestSecrets:
        held: RequestSecrets = self.__dict__.get("_secrets", NO_SECRETS)
        return held

    def secret_values(self) -> list[str]:
        """Every secret the request holds, for the scrubber while its session lives: its keys,
        its token, and the values under secret-named fields of what the caller gave."""
        s = self.secrets
        given = scrub.secrets_in([s.service_options, s.body, self.bot_config(), msgspec.to_builtins(self)])
        return [*s.provider_keys.values(), *([s.bot_token] if s.bot_token else []), *s.api_keys.values(), *given]

    def room_request(self) -> RoomRequest:
        """What the start says about the session's room."""
        return RoomRequest()

    def bot_config(self) -> dict[str, Any]:
        """The configuration the session's bot is made with."""
        return dict(self.profile_config)

    @property
    def dialin(self) -> DialinSettings | None:
        """The phone call the session answers, if it does."""
        return None

    def runner_body(self, daily_key: str, daily_proxy_url: str) -> Any:
        """``runner_args.body`` for a hosted Pipecat bot: what it would get on Pipecat Cloud
        or Daily Bots for the same request (``daily_key`` and ``daily_proxy_url``: the
        session's own key for the supervisor's Daily proxy, and where that is)."""
        return self.secrets.body

    def stream_body(self) -> Any:
        """The ``body`` a stream engine's first message carries."""
        return self.secrets.body

    def recorded(self) -> dict[str, Any]:
        """What the session's record keeps of the request: secret-named fields masked."""
        return scrub.masked({"body": self.secrets.body})

    def stream_config(self, session_id: str, room_url: str | None, audio: AudioSettings) -> dict[str, Any]:
        """The first message a stream engine receives."""
        config = self.bot_config()
        dialin = self.dialin
        return {
            "type": "config",
            "session_id": session_id,
            "profile": self.profile,
            "room_url": room_url,
            "services": config.get("services", {}),
            "config": config.get("config", []),
            "service_options": config.get("service_options", {}),
            "body": self.stream_body(),
            "dialin_settings": None if dialin is None else msgspec.to_builtins(dialin),
            "audio": {"sample_rate": audio.sample_rate, "channels": audio.channels, "frame_ms": audio.frame_ms},
        }


class BotsStart(StartRequest, kw_only=True, tag="bots_start"):
    """``POST /bots/start``: Daily Bots' fields (``services``, ``config``, and in the secrets
    ``service_options`` and ``api_keys``, whose keys are the caller's own), an optional room
    of the caller's own, and the free-form ``body`` (secret: as given)."""

    services: dict[str, str] = {}
    config: list[dict[str, Any]] = []
    room_url: str | None = None  # an existing room: not ours to delete
    pipeline: bool = False  # a built-in pipeline runs it: its keys go in provider_keys, never in the body

    def daily_bots(self, *, keys: bool) -> dict[str, Any]:
        """The Daily Bots fields as the request gave them; ``keys=False``: without any
        ``api_key`` or ``api_keys`` (what a record keeps and a built-in pipeline reads)."""
        options = self.secrets.service_options
        fields = {"bot_profile": self.profile, "services": self.services, "config": self.config,
                  "service_options": options if keys else redact_keys(options)}
        if keys and self.secrets.api_keys:
            fields["api_keys"] = self.secrets.api_keys
        return fields

    def room_request(self) -> RoomRequest:
        return RoomRequest(room_url=self.room_url, bot_token=self.secrets.bot_token)

    def bot_config(self) -> dict[str, Any]:
        return {**self.profile_config, "services": self.services, "config": self.config,
                "service_options": self.secrets.service_options}

    def runner_body(self, daily_key: str, daily_proxy_url: str) -> Any:
        # your own bot reads its keys here; a built-in pipeline gets them in provider_keys
        return self.daily_bots(keys=not self.pipeline)

    def stream_config(self, session_id: str, room_url: str | None, audio: AudioSettings) -> dict[str, Any]:
        config = super().stream_config(session_id, room_url, audio)
        if self.secrets.api_keys:  # the engine runs the services: the caller's own keys are its to use
            config["api_keys"] = self.secrets.api_keys
        return config

    def recorded(self) -> dict[str, Any]:
        return scrub.masked({"body": self.secrets.body, "daily_bots": self.daily_bots(keys=False)})


class PipecatStart(StartRequest, kw_only=True, tag="pipecat_start"):
    """``POST /start``: Pipecat Cloud's room and token properties and the ``body`` its bot
    gets as ``runner_args.body`` (secret: as given, or for a built-in pipeline its Daily Bots
    fields checked and without keys)."""

    room_properties: dict[str, Any] = {}
    user_token_properties: dict[str, Any] = {}

    def room_request(self) -> RoomRequest:
        return RoomRequest(room_properties=self.room_properties, user_token_properties=self.user_token_properties)


class DialinSettings(msgspec.Struct):
    """The phone call a dial-in session answers, as Daily's webhook announced it (the
    ``dialin_settings`` a Pipecat dial-in bot reads)."""

    call_id: str
    call_domain: str
    To: str
    From: str
    sip_headers: dict[str, str] | None = None


class DialinStart(StartRequest, kw_only=True, tag="dialin_start"):
    """``POST /dialin``: a phone call to answer in a room with a SIP endpoint."""

    settings: DialinSettings
    daily_api_url: str  # Daily's REST API, as a stream engine is told

    @property
    def dialin(self) -> DialinSettings:
        return self.settings

    def room_request(self) -> RoomRequest:
        sip = {"display_name": self.settings.From[:60] or "caller", "video": False, "sip_mode": "dial-in",
               "num_endpoints": 1}
        return RoomRequest(sip=sip)

    def runner_body(self, daily_key: str, daily_proxy_url: str) -> Any:
        # Pipecat's DailyDialinRequest, with the session's proxy key, never the account's
        return {"dialin_settings": msgspec.to_builtins(self.settings), "daily_api_key": daily_key,
                "daily_api_url": daily_proxy_url}

    def stream_body(self) -> Any:
        return {"dialin_settings": msgspec.to_builtins(self.settings), "daily_api_url": self.daily_api_url}

    def recorded(self) -> dict[str, Any]:
        return scrub.masked({"dialin_settings": msgspec.to_builtins(self.settings), "body": self.stream_body()})


class PhoneVia(enum.StrEnum):
    """Which endpoint started a phone call's session."""

    START = "start"  # POST /start with transport "websocket" (Pipecat Cloud's)
    TWILIO = "twilio"  # POST /telephony/twilio, Twilio's voice webhook
    BOTS_START = "bots_start"  # POST /bots/start with a Daily Bots profile whose transport is the phone's


class PhoneStart(StartRequest, kw_only=True, tag="phone_start"):
    """A phone call whose audio comes over a WebSocket (Twilio, Telnyx, Plivo, Exotel Media
    Streams): no Daily room. The start answers a one-time WebSocket URL; the call's stream
    opening on it is the session's join, and the bot is handed Pipecat's
    ``WebSocketRunnerArguments`` with ``body`` (secret: as given) as its ``runner_args.body``.

    ``provider`` and ``call_id``, when set (a voice webhook announced the call), are what the
    stream must say it is: any other call's stream is refused."""

    via: PhoneVia
    provider: str | None = None  # the stream must come from it ("twilio"); None: any Pipecat detects
    call_id: str | None = None  # the stream must be this call's (the webhook's CallSid)
    from_number: str = ""
    to_number: str = ""

    def recorded(self) -> dict[str, Any]:
        call = {"via": self.via.value, "provider": self.provider, "call_id": self.call_id, "from": self.from_number,
                "to": self.to_number}
        return scrub.masked({"body": self.secrets.body, "phone": call})


class WebRTCStart(StartRequest, kw_only=True, tag="webrtc_start"):
    """A browser talking to the bot over Pipecat's SmallWebRTC: no Daily room. The start
    answers the session's id; the browser's SDP offer to ``/sessions/{id}/api/offer`` is the
    session's join, answered by the worker's aiortc peer, and the bot is handed Pipecat's
    ``SmallWebRTCRunnerArguments`` with ``body`` (secret: as given) as its ``runner_args.body``."""

    def recorded(self) -> dict[str, Any]:
        return scrub.masked({"body": self.secrets.body, "transport": "webrtc"})
