"""The daemon's TOML configuration, validated into msgspec Structs.

An unknown key, a wrong type or an out-of-range value is a ``ConfigError`` whose message
starts with the offending key path (``pool.max_workers: expected int >= 1``); the CLI turns
it into exit code 2. Relative paths are taken from the working directory, as operators
start the daemon from the deployment's root.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class SupervisorSection(_Section):
    http_host: str = "127.0.0.1"
    # Not 7860: Pipecat's development runner (and Gradio) listen there, and Pipecat users run both.
    http_port: Port = 7940
    run_dir: str = "run"
    api_key_env: str | None = None
    drain_timeout_s: Positive = 30.0
    profiles: str = "configs/profiles.toml"


class PoolSection(_Section):
    min_idle: Count = 2
    max_workers: Annotated[int, msgspec.Meta(ge=1)] = 8
    sessions_per_worker: Count = 1
    worker_memory_limit_mb: Annotated[int, msgspec.Meta(ge=16)] = 300
    ping_interval_s: Positive = 1.0
    ping_timeout_s: Positive = 5.0
    start_timeout_s: Positive = 15.0
    shutdown_timeout_s: Positive = 10.0
    backend: str | None = None  # the worker's call client; default: "sandbox" or "daily" by mode
    # Who workers (and so every bot) run as when the supervisor may switch users (root or
    # CAP_SETUID); default "callfleet-bot" if that user exists, else "nobody". "" keeps the
    # supervisor's own user (a start-up warning says what is then not isolated).
    worker_user: str | None = None
    # Kernel same-page merging for the workers (worker.page_merging): a Pipecat worker's
    # copies of its forkserver's pages merged back, ~14 -> ~5 MB private each; needs ksmd on.
    merge_pages: bool = False


class DailySection(_Section):
    mode: Literal["sandbox", "cloud"] = "sandbox"
    api_url: str | None = None  # default: the sandbox's, or https://api.daily.co/v1
    api_key_env: str = "DAILY_API_KEY"
    room_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,40}$")] = "cf-"
    room_exp_s: Annotated[int, msgspec.Meta(ge=60)] = 3 * 3600
    token_exp_s: Annotated[int, msgspec.Meta(ge=60)] = 3 * 3600
    requests_per_second: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 20.0
    request_timeout_s: Positive = 10.0
    max_retries: Count = 4
    room_pool: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0  # rooms (+ default tokens) created ahead
    # The Daily proxy (/daily/v1) a session's bot uses: its own bucket inside the account's
    # rate limit, so one bot cannot starve room creation for every other session.
    proxy_requests_per_second: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 2.0


class SessionsSection(_Section):
    max_duration_s: Annotated[int, msgspec.Meta(ge=60, le=14400)] = 7200
    idle_timeout_s: Positive = 60.0
    join_timeout_s: Positive = 30.0
    failover: bool = False
    history: Annotated[int, msgspec.Meta(ge=0)] = 500  # ended sessions kept in memory for GET /sessions


class LogsSection(_Section):
    """How much of the sessions' logs (``GET /sessions/{id}/logs``) sessions.db keeps: per
    session, the oldest lines go first; in all, the logs of the sessions that logged longest
    ago go first. Lengths are counted in characters of the JSON lines."""

    max_lines_per_session: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 2000
    max_bytes_per_session: Annotated[int, msgspec.Meta(ge=10_000, le=1_000_000_000)] = 1_000_000
    max_total_bytes: Annotated[int, msgspec.Meta(ge=1_000_000)] = 200_000_000


class AudioSection(_Section):
    sample_rate: Literal[8000, 16000, 24000, 48000] = 16000
    channels: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1
    frame_ms: Annotated[int, msgspec.Meta(ge=10, le=100, multiple_of=10)] = 20


class SandboxSection(_Section):
    host: str = "127.0.0.1"
    port: Port = 8990
    start: bool = True


class ClusterSection(_Section):
    """Many nodes sharing one Redis; without ``redis_url``, one node, SQLite only."""

    redis_url: str | None = None  # redis://host:6379/0 (or a Valkey)
    node_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,63}$")] | None = None  # default: host name
    advertise_url: str | None = None  # how other nodes reach this HTTP API; default http://<host IP>:<http_port>
    lease_s: Annotated[float, msgspec.Meta(ge=1, le=300)] = 10.0  # renewed every lease_s/3
    # The env var holding the secret every node of the cluster shares: node-to-node requests
    # prove they know it (the client's Authorization is never forwarded). Required with redis_url.
    node_secret_env: str | None = None


class ProvidersSection(_Section):
    """AI providers' keys (Daily Bots profiles)."""

    # base URLs a request may choose that still get the operator's provider key, e.g.
    # "https://llm.internal/v1": the same scheme, host and port, and a path that continues
    # the entry's at a "/" (callfleet.providers.url_within); any other request-chosen URL
    # needs the request's own key.
    allowed_base_urls: list[str] = msgspec.field(default_factory=list)


class DialinSection(_Section):
    """Daily's pinless dial-in webhook (POST /dialin)."""

    # The env var holding Daily's pinless HMAC secret (base64, the `hmac` of the domain's
    # pinless dial-in config). Set: /dialin needs no bearer key, and a missing, bad, stale or
    # replayed X-Pinless-Signature is a 401; unset variable: start-up fails. The embedded
    # sandbox is handed the same secret and signs its dial-in webhooks with it, as Daily does.
    hmac_secret_env: str | None = None
    max_skew_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300  # how old a signed timestamp may be


class TelephonySection(_Section):
    """Phone calls over WebSockets: ``WS /ws/{profile}`` and Twilio's voice webhook."""

    # The profile POST /telephony/twilio starts for an inbound call (a kind = "pipecat" one).
    twilio_profile: str | None = None
    # The ws:// or wss:// base the provider reaches this server at (wsUrl, TwiML's <Stream url>);
    # default: this server as the request reached it, with ws://.
    public_url: str | None = None
    # The env var holding Twilio's auth token. Set: POST /telephony/twilio takes only requests
    # carrying Twilio's X-Twilio-Signature, and needs no bearer key; unset variable: start-up fails.
    auth_token_env: str | None = None
    # The webhook's URL exactly as Twilio requests it (what it signs); default: public_url's
    # host with https:// (http:// for ws://) and /telephony/twilio.
    webhook_url: str | None = None
    ws_url_ttl_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 120  # a WebSocket URL is usable once, until then
    handshake_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 10.0  # for the stream's start message
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024 * 1024)] = 64 * 1024  # per WebSocket message
    # Messages a call may have waiting, each way (for its bot, for its phone); past that the
    # call is closed with a reason rather than anything waiting on it.
    max_queued_messages: Annotated[int, msgspec.Meta(ge=10, le=100_000)] = 500
    # Browser Origins a /ws handshake may carry (providers send none); any other is refused.
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    # Twilio's REST API, where a bot's TwilioFrameSerializer hangs calls up; default Twilio's
    # own, or in sandbox mode the sandbox's phone network.
    twilio_api_url: str | None = None


class IceServer(_Section):
    """A STUN or TURN server, as RTCPeerConnection's ``iceServers`` takes it."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class WebRTCSection(_Section):
    """Browsers talking to bots over Pipecat's SmallWebRTC (``supervisor.http.webrtc``)."""

    # The profile /client's page (and any webrtc /start naming none) starts; unset: such a
    # start must name one.
    default_profile: str | None = None
    # For the worker's peer and handed to the browser as iceConfig; none (the default): host
    # candidates only, which works offline and on one machine, with no STUN server reached.
    ice_servers: list[IceServer] = msgspec.field(default_factory=list)
    # A session started with transport "webrtc" ends join_failed if no offer comes by then.
    offer_timeout_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 120


class WebhooksSection(_Section):
    """``session.started``/``session.ended`` POSTed to ``url``, signed (``supervisor.webhooks``)."""

    url: str | None = None  # http:// or https://; unset: no webhooks
    # The env var holding the signing secret, in Standard Webhooks' form (whsec_ + base64).
    # Required with url; unset variable or a malformed secret: start-up fails.
    secret_env: str | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0  # per attempt
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 6  # the first try included
    retry_base_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0  # doubling, with jitter
    retry_max_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


class ObservabilitySection(_Section):
    """Traces of Pipecat sessions (``worker.tracing``)."""

    # An OTLP/HTTP collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT: /v1/traces is added
    # unless the URL already ends with it); unset: no tracing.
    otlp_endpoint: str | None = None
    service_name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "callfleet"


class Config(_Section):
    supervisor: SupervisorSection = msgspec.field(default_factory=SupervisorSection)
    pool: PoolSection = msgspec.field(default_factory=PoolSection)
    daily: DailySection = msgspec.field(default_factory=DailySection)
    sessions: SessionsSection = msgspec.field(default_factory=SessionsSection)
    logs: LogsSection = msgspec.field(default_factory=LogsSection)
    audio: AudioSection = msgspec.field(default_factory=AudioSection)
    sandbox: SandboxSection = msgspec.field(default_factory=SandboxSection)
    cluster: ClusterSection = msgspec.field(default_factory=ClusterSection)
    providers: ProvidersSection = msgspec.field(default_factory=ProvidersSection)
    dialin: DialinSection = msgspec.field(default_factory=DialinSection)
    telephony: TelephonySection = msgspec.field(default_factory=TelephonySection)
    webrtc: WebRTCSection = msgspec.field(default_factory=WebRTCSection)
    webhooks: WebhooksSection = msgspec.field(default_factory=WebhooksSection)
    observability: ObservabilitySection = msgspec.field(default_factory=ObservabilitySection)

    @property
    def run_dir(self) -> Path:
        return Path(self.supervisor.run_dir).resolve()

    @property
    def backend(self) -> str:
        if self.pool.backend:
            return self.pool.backend
        return "sandbox" if self.daily.mode == "sandbox" else "daily"

    @property
    def daily_api_url(self) -> str:
        if self.daily.api_url:
            return self.daily.api_url.rstrip("/")
        if self.daily.mode == "sandbox":
            return f"http://{self.sandbox.host}:{self.sandbox.port}/v1"
        return "https://api.daily.co/v1"

    @property
    def twilio_api_url(self) -> str | None:
        """Where hosted bots hang Twilio calls up, when not Twilio's own API (None: theirs)."""
        if self.telephony.twilio_api_url:
            return self.telephony.twilio_api_url.rstrip("/")
        if self.daily.mode == "sandbox":
            return f"http://{self.sandbox.host}:{self.sandbox.port}"  # the sandbox plays the phone network
        return None


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the key path."""


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def split_validation_error(text: str) -> tuple[str, str]:
    """msgspec's "Expected `int` >= 1 - at `$.pool.max_workers`" as
    ("pool.max_workers", "Expected `int` >= 1"); the path is "" at the top level."""
    m = _AT.match(text)
    what, path = (m.group("what"), m.group("path") or "") if m else (text, "")
    return path.lstrip("."), what


def sentence(what: str) -> str:
    """"Expected `int`, got `str`" -> "expected int, got str"."""
    what = what.replace("`", "")
    return what[:1].lower() + what[1:]


def _key_path(error: msgspec.ValidationError) -> str:
    """"pool.max_workers: expected int >= 1"; an unknown key is "pool.foo: unknown key"."""
    path, what = split_validation_error(str(error))
    unknown = _UNKNOWN.match(what)
    if unknown:
        key = f"{path}.{unknown.group('field')}" if path else unknown.group("field")
        return f"{key}: unknown key"
    return f"{path or '(top level)'}: {sentence(what)}"


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate TOML text; raises ``ConfigError``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_key_path(exc)) from None
    _check(config)
    return config


LOOPBACK = ("127.", "::1", "localhost")


def _check(config: Config) -> None:
    sup = config.supervisor
    if sup.api_key_env is None and not sup.http_host.startswith(LOOPBACK):
        raise ConfigError(f"supervisor.api_key_env: required when http_host ({sup.http_host}) is not loopback; "
                          "without a bearer key the API is served on loopback only")
    pool = config.pool
    if pool.min_idle > pool.max_workers:
        raise ConfigError(f"pool.min_idle: expected <= pool.max_workers ({pool.max_workers}), got {pool.min_idle}")
    if pool.ping_timeout_s <= pool.ping_interval_s:
        raise ConfigError("pool.ping_timeout_s: expected > pool.ping_interval_s")
    if config.cluster.redis_url and not config.cluster.node_secret_env:
        raise ConfigError("cluster.node_secret_env: required with cluster.redis_url (nodes prove to each other "
                          "that they share this secret)")
    for i, url in enumerate(config.providers.allowed_base_urls):
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"providers.allowed_base_urls[{i}]: expected an http(s) URL, got {url!r}")
    tel = config.telephony
    if tel.public_url and not tel.public_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"telephony.public_url: expected a ws:// or wss:// URL, got {tel.public_url!r}")
    for key in ("webhook_url", "twilio_api_url"):
        url = getattr(tel, key)
        if url and not url.startswith(("https://", "http://")):
            raise ConfigError(f"telephony.{key}: expected an http(s) URL, got {url!r}")
    for i, origin in enumerate(tel.allowed_origins):
        if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
            raise ConfigError(f"telephony.allowed_origins[{i}]: expected an origin such as https://app.example.com, "
                              f"got {origin!r}")
    _check_webhooks(config.webhooks)
    otlp = config.observability.otlp_endpoint
    if otlp is not None and not re.match(r"^https?://[^/?#\s]+[^\s]*$", otlp):
        raise ConfigError(f"observability.otlp_endpoint: expected an http(s) URL, got {otlp!r}")
    if config.daily.mode == "cloud" and config.backend == "sandbox":
        raise ConfigError("pool.backend: the sandbox client cannot join Daily's cloud (daily.mode = \"cloud\")")


def _check_webhooks(hooks: WebhooksSection) -> None:
    if hooks.url is not None and not re.match(r"^https?://[^/?#]+", hooks.url):
        raise ConfigError(f"webhooks.url: expected an http(s) URL, got {hooks.url!r}")
    if hooks.url and not hooks.secret_env:
        raise ConfigError("webhooks.secret_env: required with webhooks.url (every webhook is signed)")
    if hooks.secret_env and not hooks.url:
        raise ConfigError("webhooks.url: required with webhooks.secret_env")
    if hooks.retry_max_s < hooks.retry_base_s:
        raise ConfigError(f"webhooks.retry_max_s: expected >= webhooks.retry_base_s ({hooks.retry_base_s}), "
                          f"got {hooks.retry_max_s}")


def load(path: str | Path) -> Config:
    """Read and validate a config file; raises ``ConfigError``."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    return parse(text, str(p))
