"""What a bot is, and what the session actor gives it to act with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from protocol.audio import AudioIn
from protocol.messages import AudioSettings, Command, Err, Event, Join, Ok, RunBot, WebRTCOffer, WebSocketCall


class BotContext(Protocol):
    """The session, as a bot sees it."""

    session_id: str
    sample_rate: int
    channels: int
    run_dir: Path  # the daemon's run_dir: where a recorder writes

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        """Queue PCM (bytes or a received frame) for the call; False if dropped."""

    async def command(self, cmd: Command, timeout_s: float = 10.0) -> Ok | Err:
        """Carry out a CallClient command on the session's worker."""

    def end(self, reason: str) -> None:
        """Ask the session to end (the bot leaves, the room is cleaned up)."""

    def fail(self, detail: str) -> None:
        """Ask the session to end as failed (``error``) because the bot cannot go on."""

    def next_id(self) -> int:
        """A fresh request id for a command."""


@dataclass(frozen=True)
class Seat:
    """Where a session's bot joins its call: built by the session, made into the bot's join
    message by the bot's class."""

    id: int  # the request id of the join
    session_id: str
    room_url: str
    token: str = field(repr=False)  # the bot's meeting token
    user_name: str
    audio: AudioSettings
    timeout_s: float
    # A phone call over a WebSocket instead of a room (room_url and token are empty): only a
    # bot the worker hosts can take one (RunBot.websocket).
    websocket: WebSocketCall | None = None
    # A browser's first WebRTC offer instead of a room: only a hosted bot can take one (RunBot.webrtc).
    webrtc: WebRTCOffer | None = None


@dataclass(frozen=True)
class Hosting:
    """What a bot hosted in the worker is handed besides, for its session only."""

    body: Any = field(repr=False)  # runner_args.body
    api_url: str  # the supervisor's Daily proxy
    api_key: str = field(repr=False)  # the session's own key for it
    env: dict[str, str] = field(repr=False)  # its profile's secrets and env
    provider_keys: dict[str, str] = field(repr=False)  # a built-in pipeline's keys
    otlp_endpoint: str = ""  # [observability]: where its pipelines' traces go ("" none)
    otlp_service_name: str = ""


class BotConfigError(ValueError):
    """A bot configuration the bot cannot run with; ``key`` is the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class Bot:
    """Base class: every hook is optional. ``on_audio`` runs on the audio fast path and
    must not block or await; the others run in the session actor."""

    kind: ClassVar[str] = ""
    # A bot that runs in the worker itself (a hosted Pipecat bot): it leaves the call on its
    # way out of bot(), and how bot() ends is the session's end.
    hosted: ClassVar[bool] = False
    # A bot that relays live audio sets this: see AudioSettings.realtime_slack_ms.
    realtime_slack_ms: ClassVar[int] = 0

    def __init__(self, ctx: BotContext, config: dict[str, Any]) -> None:
        self.ctx = ctx
        self.config = config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Validate a profile's bot configuration when profiles load (blocking I/O allowed).

        Raises ``BotConfigError`` naming the offending key."""

    def join_message(self, seat: Seat, hosting: Callable[[], Hosting]) -> Join | RunBot:
        """The command that puts the bot in its call: here the worker's call client joins
        and the bot acts from the supervisor (``hosting`` is for bots the worker runs)."""
        return Join(id=seat.id, meeting_url=seat.room_url, meeting_token=seat.token, user_name=seat.user_name,
                    audio=seat.audio, timeout_s=seat.timeout_s)

    async def on_joined(self, join_data: Any) -> None:
        """The bot is in the call."""

    async def on_first_participant_joined(self, participant: dict[str, Any]) -> None:
        """The first human arrived (Pipecat's ``on_first_participant_joined``)."""

    async def on_participant_joined(self, participant: dict[str, Any]) -> None:
        """Any human arrived."""

    async def on_participant_left(self, participant: dict[str, Any], reason: str) -> None:
        """A human left."""

    async def on_event(self, event: Event) -> None:
        """Every event from the call, after the hooks above."""

    def on_audio(self, header: AudioIn, pcm: Any) -> None:
        """One frame of a participant's audio."""

    async def close(self) -> None:
        """The session is over (ended or failed); release whatever the bot holds."""
