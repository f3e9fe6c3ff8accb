"""What every part of a sandbox ``CallClient`` stands on: its state, how results reach the
caller (events and completions on the SDK thread), and the requests it makes of its room."""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from sandbox.connection import RequestError, RoomConnection
from sandbox.sdk import loop
from sandbox.sdk.custom_audio import CustomAudioTrack
from sandbox.sdk.video import CustomVideoTrack

NOT_JOINED = "Call client is not in a call"


class CallState(enum.Enum):
    """daily's call states; the value is what ``on_call_state_updated`` receives."""

    INITIALIZED = "initialized"
    JOINING = "joining"
    JOINED = "joined"
    LEAVING = "leaving"
    LEFT = "left"


# A renderer: (callback, sample rate, callback interval in ms, audio not yet handed over).
Renderer = tuple[Callable[..., None], int, int, bytearray]


class CallCore:
    """A call client's state and delivery; the parts of ``CallClient`` build on it."""

    def __init__(self, event_handler: Any = None) -> None:
        self._sdk = loop.require()
        self._handler = event_handler
        self._conn: RoomConnection | None = None
        self._state = CallState.INITIALIZED
        self._participants: dict[str, dict[str, Any]] = {}
        self._local: dict[str, Any] = {}
        self._renderers: dict[tuple[str, str], Renderer] = {}
        self._inputs: dict[str, Any] = {
            "camera": {"isEnabled": False, "settings": {}},
            "microphone": {"isEnabled": True, "settings": {}},
            "screenAudio": {"isEnabled": False, "settings": {}},
            "screenVideo": {"isEnabled": False, "settings": {}},
            "customAudio": {},
            "customVideo": {},
        }
        self._publishing: dict[str, Any] = {"camera": {"isPublishing": False}, "microphone": {"isPublishing": True}}
        self._subscriptions: dict[str, Any] = {}
        self._profiles: dict[str, Any] = {"base": {"camera": "subscribed", "microphone": "subscribed", "screenVideo": "subscribed", "screenAudio": "subscribed"}}
        self._tracks: dict[str, CustomAudioTrack] = {}  # what is sent, by track name
        self._video_tracks: dict[str, CustomVideoTrack] = {}
        self._video_renderers: dict[tuple[str, str], tuple[Callable[..., None], str]] = {}  # never called
        self._active_speaker: dict[str, Any] = {}

    # -- delivery on the SDK thread --------------------------------------------------------

    def _emit(self, callback: str, *args: Any) -> None:
        handler = getattr(self._handler, callback, None)
        if handler is not None:
            loop.guarded(handler, *args)  # daily-python swallows what handlers raise

    def _complete(self, completion: Any, *args: Any) -> None:
        if completion is not None:
            loop.guarded(completion, *args)

    def _fail(self, completion: Any, message: str) -> None:
        self._sdk.call(self._complete, completion, message)

    def _set_state(self, state: CallState) -> None:
        self._state = state
        self._emit("on_call_state_updated", state.value)

    def _run(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._sdk.submit(coro)

    async def _ask(self, op: str, **args: Any) -> tuple[Any, str | None]:
        """Ask the room for ``op``: (its answer, None) or (None, the error text)."""
        if self._conn is None or self._state is not CallState.JOINED:
            return None, NOT_JOINED
        try:
            return await self._conn.request(op, **args), None
        except (TimeoutError, RequestError) as exc:
            return None, str(exc) or "request timed out"

    async def _request(self, op: str, completion: Any, **args: Any) -> None:
        """Ask the room for ``op``; the completion gets ``(error)``: None or the room's error text."""
        _, error = await self._ask(op, **args)
        self._complete(completion, error)

    async def _request_value(self, op: str, completion: Any, value: Callable[[Any], Any], **args: Any) -> None:
        """Ask the room for ``op``; the completion gets ``(value, error)`` as daily's two-argument
        completions do: ``value`` of the room's answer and None, or None and the error text."""
        answer, error = await self._ask(op, **args)
        self._complete(completion, None if error else value(answer), error)

    async def _renderer_request(self, pid: str, source: str, rate: int) -> None:
        """Ask the room to route ``pid``'s ``source`` to this client at ``rate``."""
        if self._conn is None:
            return
        try:
            await self._conn.request("set_renderer", participant_id=pid, source=source, sample_rate=rate)
        except (TimeoutError, RequestError) as exc:
            self._emit("on_error", f"set_audio_renderer failed: {exc}")

    def _bind_tracks(self, bind: bool) -> None:
        """Start (or stop) sending this client's tracks: their sources write to it."""
        for name, track in self._tracks.items():
            sinks = track.source._sinks
            if bind and (self, name) not in sinks:
                sinks.append((self, name))
            elif not bind and (self, name) in sinks:
                sinks.remove((self, name))

    def _send_audio(self, pcm: bytes, rate: int, channels: int, track: str) -> None:
        # Called on the writer's thread: hand the frame to the SDK loop.
        conn = self._conn
        if conn is not None and self._state is CallState.JOINED:
            self._sdk.call(conn.send_audio, pcm, rate, channels, track)

    # -- queries ---------------------------------------------------------------------------

    def participants(self) -> Mapping[str, Any]:
        out: dict[str, Any] = dict(self._participants)
        if self._local:
            out["local"] = self._local
        return out

    def participant_counts(self) -> Mapping[str, Any]:
        present = len(self._participants) + (1 if self._state is CallState.JOINED else 0)
        return {"present": present, "hidden": 0}

    def active_speaker(self) -> Mapping[str, Any]:
        return dict(self._active_speaker)

    def inputs(self) -> Mapping[str, Any]:
        return dict(self._inputs)

    def publishing(self) -> Mapping[str, Any]:
        return dict(self._publishing)

    def subscriptions(self) -> Mapping[str, Any]:
        return dict(self._subscriptions)

    def subscription_profiles(self) -> Mapping[str, Any]:
        return dict(self._profiles)

    def get_network_stats(self) -> Mapping[str, Any]:
        return {"threshold": "good", "quality": 100, "stats": {"latest": {}, "worstVideoReceivePacketLoss": 0}}
