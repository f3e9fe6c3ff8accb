"""Every message that crosses the supervisor <-> worker socket.

Control messages form one tagged union (``Message``) encoded as MessagePack. Commands
mirror the ``daily.CallClient`` methods a bot may use, one Struct each; events mirror the
``daily.EventHandler`` callbacks, one Struct each, with fields named exactly like the
callback's parameters so a handler can be built from the Struct alone.

Audio never travels as a ``Message``: see ``protocol.audio``.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar, Union

import msgspec

PROTOCOL_VERSION = 4  # 2: RunBot and BotFinished (hosted Pipecat bots); 3: phone calls' WebSockets relayed; 4: the operator's view (log lines, turn figures, WebRTC offers)


class Completion(enum.Enum):
    """How a CallClient method reports back."""

    NONE = "none"  # synchronous: the method's return value is the result
    ERROR = "error"  # completion(error)
    JOIN = "join"  # completion(data, error)


class ErrCode(enum.StrEnum):
    """Stable error codes carried by ``Err``."""

    TIMEOUT = "timeout"  # the SDK never called the completion in time
    SDK_ERROR = "sdk_error"  # the completion reported an error
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    BAD_REQUEST = "bad_request"
    UNSUPPORTED = "unsupported"
    INTERNAL = "internal"
    EXITING = "exiting"  # the worker is shutting down and cut the command short
    BOT_ERROR = "bot_error"  # a hosted bot raised before its transport joined
    BOT_FINISHED = "bot_finished"  # a hosted bot returned before its transport joined


class _Msg(msgspec.Struct, tag=True, omit_defaults=True, forbid_unknown_fields=True):
    """Base of every control message; the tag is the class name."""


# -- handshake ---------------------------------------------------------------------------


class Hello(_Msg):
    """First message of a worker: who it is and what it can do."""

    worker_id: str
    pid: int
    protocol_version: int
    backend: str
    capabilities: list[str] = []
    sdk_version: str = ""


class Welcome(_Msg):
    """The supervisor accepts the worker and tells it its liveness contract."""

    ping_interval_s: float
    ping_timeout_s: float
    sessions_per_worker: int = 0  # 0: unlimited; else exit after this many calls


class Reject(_Msg):
    """The supervisor refuses the worker (wrong version, unknown id); it must exit."""

    reason: str


# -- liveness ----------------------------------------------------------------------------


class Ping(_Msg):
    seq: int
    sent_at: float


class Pong(_Msg):
    """Answer to ``Ping``; carries the worker's audio counters so one poll sees them all."""

    seq: int
    sent_at: float
    answered_at: float
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    # A hosted Pipecat bot's audio, counted in the worker's client (it never crosses this
    # socket): frames its transport's renderers got, and writes of its voice to its tracks.
    bot_frames_in: int = 0
    bot_frames_out: int = 0


# -- lifecycle ---------------------------------------------------------------------------


class Shutdown(_Msg):
    """Supervisor -> worker: leave any call, release the client and exit."""

    reason: str


class ExitCode(enum.IntEnum):
    """A worker's exit status is a protocol too: the pool backs off on boot failures."""

    OK = 0  # finished normally: Shutdown, or its sessions_per_worker are done
    CRASHED = 1  # an unexpected exception
    BOOT_FAILED = 3  # could not load its backend, init the SDK or handshake
    SUPERVISOR_LOST = 4  # missed pings, or its parent died
    REJECTED = 5  # the supervisor refused the handshake


class Exiting(_Msg):
    """Worker -> supervisor: the worker is about to exit, and why."""

    reason: str
    exit_code: int


# -- hosted bots -------------------------------------------------------------------------


class RunBot(_Msg):
    """Supervisor -> worker: run the user's bot the way Pipecat Cloud does,
    ``await bot(runner_args)``, in this worker's call. The reply comes once the bot's
    transport has joined (``Ok`` with the join's data, like ``Join``'s) or the bot ended
    before that (``Err``); how the bot ends later is a ``BotFinished``."""

    id: int
    bot: str  # "path/to/bot.py:function" or "package.module:function"
    room_url: str
    token: str
    session_id: str
    body: Any = None  # DailyRunnerArguments.body
    api_url: str = ""  # DAILY_API_URL for the bot: the supervisor's per-session Daily proxy
    api_key: str = ""  # DAILY_API_KEY for the bot: that proxy's per-session key, never the account's
    timeout_s: float = 30.0  # for the bot's transport to join
    # The bot's environment for this session: its profile's secrets and env (set before
    # bot() runs, taken away when it ends). A worker starts with none of the operator's.
    env: dict[str, str] = {}
    # Provider keys for the built-in Daily Bots pipelines (env var name -> key), held in
    # memory only: never put in the environment, where the bot's libraries could read them.
    provider_keys: dict[str, str] = {}
    # A built-in Daily Bots pipeline's server-side function handlers, from its profile
    # (function name -> "package.module:function"), and how long a call waits for the RTVI
    # client's result (None: the pipeline's default).
    functions: dict[str, str] = {}
    client_function_timeout_s: float | None = None
    # A phone call over a WebSocket instead of a Daily room (room_url and token are empty):
    # the bot gets Pipecat's WebSocketRunnerArguments, its socket relayed by the supervisor.
    websocket: WebSocketCall | None = None
    # A browser's WebRTC offer instead of a Daily room (room_url and token are empty): the
    # worker answers it with Pipecat's SmallWebRTCConnection, the answer in the Ok, and the
    # bot gets SmallWebRTCRunnerArguments.
    webrtc: WebRTCOffer | None = None
    # [observability]: where the bot's pipelines send Pipecat's traces (an OTLP/HTTP base URL;
    # empty: no tracing), and the service name they carry.
    otlp_endpoint: str = ""
    otlp_service_name: str = ""


class BotFinished(_Msg):
    """Worker -> supervisor: the hosted bot's ``bot()`` returned (``error`` None) or raised
    (``error`` holds the traceback). Not sent when the supervisor cancelled it."""

    error: str | None = None


# -- replies -----------------------------------------------------------------------------


class Ok(_Msg):
    id: int
    result: Any = None


class Err(_Msg):
    id: int
    code: ErrCode
    message: str


# -- commands ----------------------------------------------------------------------------


class Command(_Msg):
    """A request to the worker. Exactly one ``Ok`` or ``Err`` with the same ``id`` answers it.

    ``method`` names the CallClient method that carries it out; every other field except
    ``id`` is passed to that method as a keyword argument of the same name.
    """

    id: int
    method: ClassVar[str] = ""
    completion: ClassVar[Completion] = Completion.ERROR


class AudioSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Audio formats of a call: what renderers deliver and what the bot's track sends."""

    sample_rate: Annotated[int, msgspec.Meta(ge=8000, le=48000)] = 16000
    channels: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1
    frame_ms: Annotated[int, msgspec.Meta(ge=10, le=100, multiple_of=10)] = 20
    # For a bot that relays live audio (echo): the bot's voice is written no faster than
    # real time plus this much, and the excess -- a backlog left by a stall anywhere on the
    # way -- is dropped, so a hiccup does not become latency for the rest of the call.
    # 0: everything is played (speech made faster than real time must not be cut).
    realtime_slack_ms: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0


class Join(Command):
    """Join a room. The worker adds its custom microphone track to ``client_settings``.

    With ``auto_render`` the worker sets an audio renderer for every remote participant,
    present at join or arriving later, at ``audio``'s rate and interval.
    """

    meeting_url: str
    meeting_token: str | None = None
    client_settings: dict[str, Any] | None = None
    audio: AudioSettings = msgspec.field(default_factory=AudioSettings)
    user_name: str | None = None
    auto_render: bool = True
    timeout_s: float = 30.0
    method: ClassVar[str] = "join"
    completion: ClassVar[Completion] = Completion.JOIN


class Leave(Command):
    timeout_s: float = 10.0
    method: ClassVar[str] = "leave"


class SendAppMessage(Command):
    message: Any
    participant_id: str | None = None
    method: ClassVar[str] = "send_app_message"


class SetAudioRenderer(Command):
    """Forward one participant's audio as ``AudioIn`` frames (rate/interval default to join's)."""

    participant_id: str
    audio_source: str = "microphone"
    sample_rate: int | None = None
    callback_interval_ms: int | None = None
    method: ClassVar[str] = "set_audio_renderer"
    completion: ClassVar[Completion] = Completion.NONE


class ClearAudioRenderer(Command):
    """Stop forwarding a participant's audio (daily-python has no unset; frames are dropped)."""

    participant_id: str
    audio_source: str = "microphone"
    method: ClassVar[str] = ""
    completion: ClassVar[Completion] = Completion.NONE


class StartRecording(Command):
    streaming_settings: dict[str, Any] | None = None
    stream_id: str | None = None
    force_new: bool | None = None
    method: ClassVar[str] = "start_recording"


class StopRecording(Command):
    stream_id: str | None = None
    method: ClassVar[str] = "stop_recording"


class UpdateRecording(Command):
    update_settings: dict[str, Any]
    stream_id: str | None = None
    method: ClassVar[str] = "update_recording"


class StartTranscription(Command):
    settings: dict[str, Any] | None = None
    method: ClassVar[str] = "start_transcription"


class StopTranscription(Command):
    method: ClassVar[str] = "stop_transcription"


class UpdateTranscription(Command):
    participants: list[str] | None = None
    instance_id: str | None = None
    method: ClassVar[str] = "update_transcription"


class StartDialout(Command):
    settings: dict[str, Any]
    method: ClassVar[str] = "start_dialout"


class StopDialout(Command):
    participant_id: str
    method: ClassVar[str] = "stop_dialout"


class SendDtmf(Command):
    settings: dict[str, Any]
    method: ClassVar[str] = "send_dtmf"


class SipCallTransfer(Command):
    settings: dict[str, Any]
    method: ClassVar[str] = "sip_call_transfer"


class SipRefer(Command):
    settings: dict[str, Any]
    method: ClassVar[str] = "sip_refer"


class UpdateSubscriptions(Command):
    participant_settings: dict[str, Any] | None = None
    profile_settings: dict[str, Any] | None = None
    method: ClassVar[str] = "update_subscriptions"


class UpdateSubscriptionProfiles(Command):
    profile_settings: dict[str, Any]
    method: ClassVar[str] = "update_subscription_profiles"


class UpdateRemoteParticipants(Command):
    remote_participants: dict[str, Any]
    method: ClassVar[str] = "update_remote_participants"


class EjectRemoteParticipants(Command):
    ids: list[str]
    method: ClassVar[str] = "eject_remote_participants"


class UpdateInputs(Command):
    input_settings: dict[str, Any]
    method: ClassVar[str] = "update_inputs"


class UpdatePublishing(Command):
    publishing_settings: dict[str, Any]
    method: ClassVar[str] = "update_publishing"


class UpdatePermissions(Command):
    permissions: dict[str, Any]
    method: ClassVar[str] = "update_permissions"


class SetUserName(Command):
    user_name: str
    method: ClassVar[str] = "set_user_name"
    completion: ClassVar[Completion] = Completion.NONE


class SendPrebuiltChatMessage(Command):
    message: str
    user_name: str | None = None
    method: ClassVar[str] = "send_prebuilt_chat_message"


class StartLiveStreamWithEndpoints(Command):
    endpoints: list[Any]
    streaming_settings: dict[str, Any] | None = None
    stream_id: str | None = None
    force_new: bool | None = None
    method: ClassVar[str] = "start_live_stream_with_endpoints"


class StartLiveStreamWithRtmpUrls(Command):
    rtmp_urls: list[str]
    streaming_settings: dict[str, Any] | None = None
    stream_id: str | None = None
    force_new: bool | None = None
    method: ClassVar[str] = "start_live_stream_with_rtmp_urls"


class UpdateLiveStream(Command):
    update_settings: dict[str, Any]
    stream_id: str | None = None
    method: ClassVar[str] = "update_live_stream"


class StopLiveStream(Command):
    stream_id: str | None = None
    method: ClassVar[str] = "stop_live_stream"


class AddLiveStreamingEndpoints(Command):
    endpoints: list[Any]
    stream_id: str | None = None
    method: ClassVar[str] = "add_live_streaming_endpoints"


class RemoveLiveStreamingEndpoints(Command):
    endpoints: list[Any]
    stream_id: str | None = None
    method: ClassVar[str] = "remove_live_streaming_endpoints"


class GetParticipants(Command):
    method: ClassVar[str] = "participants"
    completion: ClassVar[Completion] = Completion.NONE


class GetParticipantCounts(Command):
    method: ClassVar[str] = "participant_counts"
    completion: ClassVar[Completion] = Completion.NONE


class GetActiveSpeaker(Command):
    method: ClassVar[str] = "active_speaker"
    completion: ClassVar[Completion] = Completion.NONE


class GetInputs(Command):
    method: ClassVar[str] = "inputs"
    completion: ClassVar[Completion] = Completion.NONE


class GetPublishing(Command):
    method: ClassVar[str] = "publishing"
    completion: ClassVar[Completion] = Completion.NONE


class GetSubscriptions(Command):
    method: ClassVar[str] = "subscriptions"
    completion: ClassVar[Completion] = Completion.NONE


class GetNetworkStats(Command):
    method: ClassVar[str] = "get_network_stats"
    completion: ClassVar[Completion] = Completion.NONE


# -- events ------------------------------------------------------------------------------


class Event(_Msg):
    """A ``daily.EventHandler`` callback, forwarded. ``callback`` names it.

    Payloads are typed loosely (``Any``, ``str | None``): the SDK is the source of truth for
    their shape, and an event that failed validation on the receiving side would be lost.
    """

    callback: ClassVar[str] = ""


class ActiveSpeakerChanged(Event):
    participant: Any
    callback: ClassVar[str] = "on_active_speaker_changed"


class AppMessage(Event):
    message: Any
    sender: str | None
    callback: ClassVar[str] = "on_app_message"


class AvailableDevicesUpdated(Event):
    available_devices: Any
    callback: ClassVar[str] = "on_available_devices_updated"


class CallStateUpdated(Event):
    state: str | None
    callback: ClassVar[str] = "on_call_state_updated"


class DialinConnected(Event):
    data: Any
    callback: ClassVar[str] = "on_dialin_connected"


class DialinError(Event):
    data: Any
    callback: ClassVar[str] = "on_dialin_error"


class DialinReady(Event):
    sip_endpoint: str | None
    callback: ClassVar[str] = "on_dialin_ready"


class DialinStopped(Event):
    data: Any
    callback: ClassVar[str] = "on_dialin_stopped"


class DialinWarning(Event):
    data: Any
    callback: ClassVar[str] = "on_dialin_warning"


class DialoutAnswered(Event):
    data: Any
    callback: ClassVar[str] = "on_dialout_answered"


class DialoutConnected(Event):
    data: Any
    callback: ClassVar[str] = "on_dialout_connected"


class DialoutError(Event):
    data: Any
    callback: ClassVar[str] = "on_dialout_error"


class DialoutStopped(Event):
    data: Any
    callback: ClassVar[str] = "on_dialout_stopped"


class DialoutWarning(Event):
    data: Any
    callback: ClassVar[str] = "on_dialout_warning"


class DtmfEvent(Event):
    data: Any
    callback: ClassVar[str] = "on_dtmf_event"


class Error(Event):
    message: str | None
    callback: ClassVar[str] = "on_error"


class InputsUpdated(Event):
    input_settings: Any
    callback: ClassVar[str] = "on_inputs_updated"


class LiveStreamError(Event):
    stream_id: str | None
    message: str | None
    callback: ClassVar[str] = "on_live_stream_error"


class LiveStreamStarted(Event):
    status: Any
    callback: ClassVar[str] = "on_live_stream_started"


class LiveStreamStopped(Event):
    stream_id: str | None
    callback: ClassVar[str] = "on_live_stream_stopped"


class LiveStreamUpdated(Event):
    update: Any
    callback: ClassVar[str] = "on_live_stream_updated"


class LiveStreamWarning(Event):
    stream_id: str | None
    message: str | None
    callback: ClassVar[str] = "on_live_stream_warning"


class NetworkConnectionStatusUpdated(Event):
    status: Any
    callback: ClassVar[str] = "on_network_connection_status_updated"


class NetworkStatsUpdated(Event):
    stats: Any
    callback: ClassVar[str] = "on_network_stats_updated"


class ParticipantCountsUpdated(Event):
    counts: Any
    callback: ClassVar[str] = "on_participant_counts_updated"


class ParticipantJoined(Event):
    participant: Any
    callback: ClassVar[str] = "on_participant_joined"


class ParticipantLeft(Event):
    participant: Any
    reason: str | None
    callback: ClassVar[str] = "on_participant_left"


class ParticipantUpdated(Event):
    participant: Any
    callback: ClassVar[str] = "on_participant_updated"


class PublishingUpdated(Event):
    publishing_settings: Any
    callback: ClassVar[str] = "on_publishing_updated"


class RecordingError(Event):
    stream_id: str | None
    message: str | None
    callback: ClassVar[str] = "on_recording_error"


class RecordingStarted(Event):
    status: Any
    callback: ClassVar[str] = "on_recording_started"


class RecordingStopped(Event):
    stream_id: str | None
    callback: ClassVar[str] = "on_recording_stopped"


class SubscriptionProfilesUpdated(Event):
    subscription_profiles: Any
    callback: ClassVar[str] = "on_subscription_profiles_updated"


class SubscriptionsUpdated(Event):
    subscriptions: Any
    callback: ClassVar[str] = "on_subscriptions_updated"


class TranscriptionError(Event):
    message: str | None
    callback: ClassVar[str] = "on_transcription_error"


class TranscriptionMessage(Event):
    message: Any
    callback: ClassVar[str] = "on_transcription_message"


class TranscriptionStarted(Event):
    status: Any
    callback: ClassVar[str] = "on_transcription_started"


class TranscriptionStopped(Event):
    stopped_by: str | None
    stopped_by_error: bool
    callback: ClassVar[str] = "on_transcription_stopped"


class TranscriptionUpdated(Event):
    update: Any
    callback: ClassVar[str] = "on_transcription_updated"


# -- phone calls over WebSockets ---------------------------------------------------------
#
# The supervisor terminates a phone call's WebSocket (Twilio, Telnyx, Plivo, Exotel Media
# Streams) and relays every message, in order, between it and the one worker that runs the
# call's bot. A relayed message names its socket (the RunBot's id), so what is left of one
# call can never reach the next call a worker hosts.


class WebSocketCall(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The phone call's WebSocket as the bot sees it (``RunBot.websocket``): the handshake
    the provider made (its credentials taken out), and what the worker needs to relay it."""

    socket: int  # the id every SocketText/SocketBytes/SocketClose of this call carries
    path: str = "/ws"
    query: str = ""  # the query string, without the session's token
    headers: list[tuple[str, str]] = []  # lower-case names, as ASGI gives them
    client: tuple[str, int] | None = None  # the provider's address
    max_queued: int = 500  # messages for the bot it has not read yet; past that its call is closed
    max_message_bytes: int = 65536
    # Where the bot's serializer hangs the call up (a provider's REST API base URL, by provider):
    # Twilio's is api.twilio.com, or the sandbox's phone network.
    api_urls: dict[str, str] = {}


class SocketText(_Msg):
    """A text message of a phone call's WebSocket: supervisor -> worker what the phone
    sent, worker -> supervisor what the bot sends."""

    socket: int
    text: str


class SocketBytes(_Msg):
    """A binary message of a phone call's WebSocket, either way (as ``SocketText``)."""

    socket: int
    data: bytes


class SocketClose(_Msg):
    """The WebSocket closed: supervisor -> worker, the phone hung up (or the supervisor
    closed it); worker -> supervisor, the bot closed it, or the worker did for the bot (its
    queue overflowed, its bot ended). Nothing of the socket follows it either way."""

    socket: int
    code: int = 1000
    reason: str = ""


SOCKET_MESSAGES: tuple[type[_Msg], ...] = (SocketText, SocketBytes, SocketClose)


# -- turn figures --------------------------------------------------------------------------
#
# What Pipecat measured in a hosted bot's pipeline, batched by the worker every few seconds
# (and once more when the bot ends), never per frame: the supervisor aggregates them into
# the session's detail and its Prometheus series.


class Turn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One user turn answered by the bot: user stopped speaking -> bot started speaking."""

    at: float  # Unix seconds, when the bot started speaking
    voice_to_voice_s: float
    ttfb_s: dict[str, float] = {}  # service -> its time to first byte in this turn


class TurnFigures(_Msg):
    """Worker -> supervisor: the figures measured since the last batch."""

    turns: list[Turn] = []
    ttfb_s: list[tuple[str, float]] = []  # (service, seconds), every TTFB Pipecat reported
    processing_s: list[tuple[str, float]] = []  # (service, seconds), Pipecat's processing times
    usage: dict[str, float] = {}  # kind -> amount used since the last batch (tokens, characters, seconds)


# -- WebRTC sessions (Pipecat's SmallWebRTC) ----------------------------------------------
#
# The browser's media go straight to the worker's aiortc peer; only the signalling (the SDP
# offer and answer, trickled ICE candidates) passes through the supervisor, as requests the
# worker answers with one Ok or Err of the same id.


class WebRTCOffer(_Msg):
    """Supervisor -> worker: an SDP offer. The first rides in ``RunBot.webrtc`` (``id`` 0
    there); a later one, for the same peer (``pc_id``), renegotiates it, or replaces it with
    ``restart_pc``. Answered ``Ok({"sdp", "type", "pc_id"})``, Pipecat's answer as is."""

    id: int
    sdp: str
    sdp_type: str = "offer"  # the SDP's "type" ("type" is every message's tag here)
    pc_id: str | None = None
    restart_pc: bool = False
    # STUN/TURN servers for the worker's peer ({"urls", "username"?, "credential"?}); none:
    # host candidates only, which is what works offline and on one machine.
    ice_servers: list[dict[str, Any]] = []


class IceCandidate(msgspec.Struct, forbid_unknown_fields=True):
    """One trickled ICE candidate, as Pipecat's ``SmallWebRTCPatchRequest`` carries it; an
    empty ``candidate`` is the end-of-candidates marker."""

    candidate: str
    sdp_mid: str
    sdp_mline_index: int


class WebRTCCandidates(_Msg):
    """Supervisor -> worker: the browser's trickled ICE candidates for peer ``pc_id``."""

    id: int
    pc_id: str
    candidates: list[IceCandidate]


WEBRTC_REQUESTS: tuple[type[_Msg], ...] = (WebRTCOffer, WebRTCCandidates)


# -- session logs ---------------------------------------------------------------------------


class LogLines(_Msg):
    """Worker -> supervisor: lines the worker logged, in order, each one structlog JSON line
    as rendered and scrubbed for stderr. ``session_id`` is the session the lines have bound;
    "" for lines logged with none bound, which the supervisor files under the session the
    worker hosts (or drops while it hosts none). ``dropped``: lines the worker dropped just
    before these because the supervisor read too slowly."""

    session_id: str
    lines: list[str]
    dropped: int = 0


COMMANDS: tuple[type[Command], ...] = tuple(Command.__subclasses__())
EVENTS: tuple[type[Event], ...] = tuple(Event.__subclasses__())
EVENT_BY_CALLBACK: dict[str, type[Event]] = {e.callback: e for e in EVENTS}

CONTROL_TYPES: tuple[type[_Msg], ...] = (
    Hello,
    Welcome,
    Reject,
    Ping,
    Pong,
    Shutdown,
    Exiting,
    RunBot,
    BotFinished,
    *SOCKET_MESSAGES,
    TurnFigures,
    *WEBRTC_REQUESTS,
    LogLines,
    Ok,
    Err,
    *COMMANDS,
    *EVENTS,
)

# The decoder's target: every control message type. Built from the registry above so a
# new command or event cannot be forgotten here.
Message = Union[CONTROL_TYPES]  # type: ignore[valid-type]  # noqa: UP007 - built from a tuple
