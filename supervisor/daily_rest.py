"""Daily's REST API, async, over one ``aiohttp.ClientSession``.

The helper surface of Pipecat's ``DailyRESTHelper`` (``pipecat.transports.daily.utils``) --
``DailyRoomSipParams``, ``DailyRoomProperties``, ``DailyRoomParams``, ``DailyRoomObject`` with
Pipecat's defaults,
``create_room``, ``get_room_from_url``, ``get_token``, ``delete_room_by_url``,
``delete_room_by_name``, ``get_name_from_url`` -- plus listing (pagination), token
validation, presence, ``pinless_call_update``, recordings, app messages and eject.

Client-side rate limiting follows Daily's classes; 429 (honouring ``Retry-After``), 5xx,
timeouts and dropped connections are retried with exponential back-off and jitter --
but only where a retry cannot do harm: a ``POST /rooms`` without a name is never retried,
because a lost reply would otherwise create a second room. Every failure surfaces as
``DailyAPIError(status, error, info)``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import aiohttp
import msgspec
import structlog

from callfleet.backoff import Backoff, Jitter
from callfleet.ratelimit import TokenBucket

log = structlog.get_logger("supervisor.daily_rest")

DEFAULT_API_URL = "https://api.daily.co/v1"


class DailyAPIError(Exception):
    """A Daily REST call that failed for good. ``status`` 0 means no HTTP answer at all
    (timeout or connection failure); ``error`` is Daily's stable error type."""

    def __init__(self, status: int, error: str, info: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {error}: {info}")
        self.status = status
        self.error = error
        self.info = info
        self.retry_after = retry_after  # seconds, from a 429's Retry-After

    @property
    def timed_out(self) -> bool:
        return self.status == 0 and self.error == "timeout"


# -- Pipecat's DailyRESTHelper types, field for field ----------------------------------


class DailyRoomSipParams(msgspec.Struct, omit_defaults=False):
    display_name: str = "sw-sip-dialin"
    video: bool = False
    sip_mode: str = "dial-in"
    num_endpoints: int = 1


def _in_five_minutes() -> float:
    return time.time() + 5 * 60


class DailyRoomProperties(msgspec.Struct, omit_defaults=True):
    exp: float = msgspec.field(default_factory=_in_five_minutes)
    enable_chat: bool = False
    enable_prejoin_ui: bool = False
    enable_emoji_reactions: bool = False
    eject_at_room_exp: bool = True
    enable_dialout: bool | None = None
    enable_recording: str | None = None
    max_participants: int | None = None
    sip: DailyRoomSipParams | None = None
    sip_uri: dict[str, Any] | None = None
    start_video_off: bool | None = None
    extra: dict[str, Any] = {}  # any other Daily room property, passed through as is

    def to_json(self) -> dict[str, Any]:
        out = msgspec.to_builtins(self)
        out.update(out.pop("extra", {}))
        out["exp"] = int(out.get("exp", self.exp))
        # Defaults are sent explicitly: Daily's own defaults differ from the helper's.
        for key in ("enable_chat", "enable_prejoin_ui", "enable_emoji_reactions", "eject_at_room_exp"):
            out[key] = getattr(self, key)
        return {k: v for k, v in out.items() if v is not None}


class DailyRoomParams(msgspec.Struct):
    name: str | None = None
    privacy: Literal["private", "public"] = "public"
    properties: DailyRoomProperties = msgspec.field(default_factory=DailyRoomProperties)


class DailyRoomObject(msgspec.Struct):
    id: str
    name: str
    api_created: bool
    privacy: str
    url: str
    created_at: str
    config: dict[str, Any] = {}

    @property
    def sip_endpoint(self) -> str | None:
        sip_uri = self.config.get("sip_uri") or {}
        return sip_uri.get("endpoint")


def get_name_from_url(room_url: str) -> str:
    """The room name of ``https://domain.daily.co/NAME`` (or the sandbox's URLs)."""
    name = urlparse(room_url).path.strip("/")
    if not name or "/" in name:
        raise ValueError(f"not a Daily room URL: {room_url}")
    return name


# -- rate limiting ----------------------------------------------------------------------


def _rate_class(method: str, path: str) -> str:
    if method == "DELETE" and path.startswith("/rooms/") and path.count("/") == 2:
        return "slow"
    if method == "GET" and path == "/recordings":
        return "slow"
    if method == "POST" and path.startswith("/dialin/"):
        return "media"
    return "default"


class SharedLimit(Protocol):
    """Cluster mode: the account's buckets shared by all nodes (``local`` while that is impossible)."""

    async def take(self, rate_class: str, local: TokenBucket) -> None: ...


# -- the client -------------------------------------------------------------------------


class DailyREST:
    """Daily's REST API. ``requests_per_second`` caps the default class; the slower
    classes (room deletes, recording lists; dial-in calls) keep Daily's own ratios."""

    def __init__(
        self,
        api_key: str,
        session: aiohttp.ClientSession,
        *,
        api_url: str = DEFAULT_API_URL,
        requests_per_second: float = 20.0,
        timeout_s: float = 10.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 8.0,
    ) -> None:
        self._key = api_key
        self._session = session
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        # Jitter so a fleet of supervisors does not retry in step.
        self.backoff = Backoff(backoff_base_s, backoff_max_s, jitter=Jitter.EQUAL)
        slow = requests_per_second / 12  # 2/s at Daily's 20/s
        self._buckets = {
            "default": TokenBucket(requests_per_second, requests_per_second * 5),
            "slow": TokenBucket(slow, max(1.0, slow * 25)),
            "media": TokenBucket(max(0.05, requests_per_second / 20), 5.0),
        }
        self.retries = 0  # every retry, for /metrics
        self.shared_limit: SharedLimit | None = None  # set in cluster mode: Daily limits the account, not the node

    # -- transport ------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      idempotent: bool | None = None) -> Any:
        """One API call with rate limiting and retries; returns the JSON body.

        ``idempotent`` defaults to True for GET/DELETE and False for POST. Raises
        ``DailyAPIError``.
        """
        if idempotent is None:
            idempotent = method in ("GET", "DELETE", "PUT")
        rate_class = _rate_class(method, path)
        bucket = self._buckets[rate_class]
        attempt = 0
        while True:
            await (bucket.take() if self.shared_limit is None else self.shared_limit.take(rate_class, bucket))
            try:
                return await self._once(method, path, json, params)
            except DailyAPIError as exc:
                if exc.status == 429:
                    retryable = True  # refused before it had any effect: always safe
                elif exc.status >= 500 or exc.status == 0:
                    retryable = idempotent  # it may have taken effect
                else:
                    retryable = False
                if not retryable or attempt >= self.max_retries:
                    raise
                delay = self.backoff.delay(attempt, at_least=exc.retry_after)  # Retry-After if longer
                attempt += 1
                self.retries += 1
                log.warning("daily REST retry", method=method, path=path, status=exc.status,
                            error=exc.error, attempt=attempt, delay_s=round(delay, 3))
                await asyncio.sleep(delay)

    async def _once(self, method: str, path: str, json: Any, params: dict[str, Any] | None) -> Any:
        url = self.api_url + path
        headers = {"Authorization": f"Bearer {self._key}"}
        try:
            async with self._session.request(
                method, url, json=json, params=params, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                text = await resp.text()
                if resp.status < 300:
                    return msgspec.json.decode(text) if text else {}
                error, info = _error_body(text, resp.status)
                raise DailyAPIError(resp.status, error, info, _retry_after(resp.headers.get("Retry-After")))
        except TimeoutError:
            raise DailyAPIError(0, "timeout", f"{method} {path} took longer than {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise DailyAPIError(0, "connection-error", f"{method} {path}: {exc}") from None

    # -- rooms ----------------------------------------------------------------------------

    async def create_room(self, params: DailyRoomParams) -> DailyRoomObject:
        body: dict[str, Any] = {"privacy": params.privacy, "properties": params.properties.to_json()}
        if params.name:
            body["name"] = params.name
        try:
            data = await self.request("POST", "/rooms", json=body, idempotent=params.name is not None)
        except DailyAPIError as exc:
            # A named create retried after a lost reply finds its own room: that is success.
            if params.name and exc.status == 400 and "already exists" in exc.info:
                return await self.get_room_by_name(params.name)
            raise
        return msgspec.convert(data, DailyRoomObject)

    async def get_room_by_name(self, name: str) -> DailyRoomObject:
        return msgspec.convert(await self.request("GET", f"/rooms/{name}"), DailyRoomObject)

    async def get_room_from_url(self, room_url: str) -> DailyRoomObject:
        return await self.get_room_by_name(get_name_from_url(room_url))

    async def list_rooms(self, *, limit: int = 100, starting_after: str | None = None,
                         ending_before: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        if ending_before:
            params["ending_before"] = ending_before
        data = await self.request("GET", "/rooms", params=params)
        data["data"] = [msgspec.convert(r, DailyRoomObject) for r in data.get("data", [])]
        return dict(data)

    async def iter_rooms(self) -> AsyncIterator[DailyRoomObject]:
        """Every room, newest first, page by page."""
        after: str | None = None
        while True:
            page = await self.list_rooms(starting_after=after)
            for room in page["data"]:
                yield room
            if len(page["data"]) < 100:
                return
            after = page["data"][-1].id

    async def delete_room_by_name(self, room_name: str) -> bool:
        """True when deleted, or already gone (404): either way the room no longer exists."""
        try:
            await self.request("DELETE", f"/rooms/{room_name}")
        except DailyAPIError as exc:
            if exc.status == 404:
                return True
            raise
        return True

    async def delete_room_by_url(self, room_url: str) -> bool:
        return await self.delete_room_by_name(get_name_from_url(room_url))

    # -- tokens ---------------------------------------------------------------------------

    async def get_token(self, room_url: str, expiry_time: float = 60 * 60, owner: bool = True,
                        params: dict[str, Any] | None = None) -> str:
        """A meeting token for the room; ``params`` adds token properties (user_name, ...)."""
        properties: dict[str, Any] = {
            "room_name": get_name_from_url(room_url),
            "is_owner": owner,
            "exp": int(time.time() + expiry_time),
        }
        properties.update(params or {})
        data = await self.request("POST", "/meeting-tokens", json={"properties": properties}, idempotent=True)
        return str(data["token"])

    async def validate_token(self, token: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/meeting-tokens/{token}"))

    # -- presence, messages, eject ----------------------------------------------------------

    async def presence(self, room_name: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/rooms/{room_name}/presence"))

    async def send_app_message(self, room_name: str, data: Any, recipient: str = "*") -> None:
        await self.request("POST", f"/rooms/{room_name}/send-app-message", json={"data": data, "recipient": recipient})

    async def eject(self, room_name: str, ids: list[str]) -> list[str]:
        reply = await self.request("POST", f"/rooms/{room_name}/eject", json={"ids": ids}, idempotent=True)
        return list(reply.get("ejectedIds", []))

    # -- dial-in ----------------------------------------------------------------------------

    async def pinless_call_update(self, call_id: str, call_domain: str, sip_uri: str) -> dict[str, Any]:
        body = {"callId": call_id, "callDomain": call_domain, "sipUri": sip_uri}
        return dict(await self.request("POST", "/dialin/pinlessCallUpdate", json=body, idempotent=True))

    # -- recordings -------------------------------------------------------------------------

    async def list_recordings(self, *, room_name: str | None = None, limit: int = 100,
                              starting_after: str | None = None, ending_before: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("room_name", room_name), ("starting_after", starting_after), ("ending_before", ending_before)):
            if value:
                params[key] = value
        return dict(await self.request("GET", "/recordings", params=params))

    async def get_recording(self, recording_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/recordings/{recording_id}"))

    async def delete_recording(self, recording_id: str) -> dict[str, Any]:
        return dict(await self.request("DELETE", f"/recordings/{recording_id}"))

    async def recording_access_link(self, recording_id: str, valid_for_secs: int = 3600) -> dict[str, Any]:
        return dict(await self.request("GET", f"/recordings/{recording_id}/access-link",
                                       params={"valid_for_secs": valid_for_secs}))


def _error_body(text: str, status: int) -> tuple[str, str]:
    try:
        body = msgspec.json.decode(text)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"]), str(body.get("info", ""))
    except msgspec.DecodeError:
        pass
    return ("server-error" if status >= 500 else "http-error"), text[:200] or f"HTTP {status}"


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
