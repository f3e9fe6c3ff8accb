"""A call client in its room: joining, leaving, and keeping its view of who is there as the
room's events arrive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.connection import JoinError, RoomConnection
from sandbox.sdk.call_core import CallState
from sandbox.sdk.call_media import CallMedia
from sandbox.sdk.process import DEVICES


class CallMembership(CallMedia):
    """``join``, ``leave`` and ``release`` of a ``CallClient``, and the room's events."""

    def join(self, meeting_url: str, meeting_token: Any = None, client_settings: Any = None, completion: Any = None) -> None:
        """Join the room at ``meeting_url``; the completion gets ``(join data, None)`` or
        ``(None, daily's error text)``."""
        self._run(self._join(meeting_url, meeting_token, client_settings or {}, completion))

    async def _join(self, url: str, token: str | None, settings: Mapping[str, Any], completion: Any) -> None:
        if self._state in (CallState.JOINING, CallState.JOINED):
            self._complete(completion, None, "Call client is already in a call")
            return
        self._set_state(CallState.JOINING)
        self._apply_inputs(settings.get("inputs") or {})
        mic_on = bool(self._inputs["microphone"].get("isEnabled", True))
        conn = RoomConnection(self._on_room_event, self._on_room_audio)
        user_name = self._local.get("info", {}).get("userName", "") if self._local else ""
        speaker = DEVICES.speaker
        try:
            # With a speaker selected, everyone's microphone is rendered from the first frame.
            data = await conn.join(url, token, user_name=user_name, mic=mic_on,
                                   render_all=speaker.sample_rate if speaker is not None else None)
        except JoinError as exc:
            self._emit("on_error", str(exc))
            self._set_state(CallState.LEAVING)
            self._set_state(CallState.LEFT)
            self._complete(completion, None, str(exc))
            return
        self._conn = conn
        DEVICES.joined.add(self)
        if speaker is not None:
            speaker._listen(id(self), True)  # before any await: no audio can come in between
        self._local = data["participants"]["local"]
        self._participants = {k: v for k, v in data["participants"].items() if k != "local"}
        # Renderers set before this point are requested here; any set from now on requests
        # itself (set_audio_renderer checks _conn), so none falls between the two.
        for (pid, source), (_, rate, _, _) in list(self._renderers.items()):
            await self._renderer_request(pid, source, rate)
        self._bind_tracks(True)
        self._set_state(CallState.JOINED)
        self._complete(completion, data, None)

    def leave(self, completion: Any = None) -> None:
        """Leave the call; the completion gets None."""
        self._run(self._leave(completion))

    async def _leave(self, completion: Any) -> None:
        if self._conn is None or self._state is not CallState.JOINED:
            self._complete(completion, None)
            return
        self._set_state(CallState.LEAVING)
        self._bind_tracks(False)
        self._stop_hearing()
        conn, self._conn = self._conn, None
        await conn.leave()
        self._participants.clear()
        self._set_state(CallState.LEFT)
        self._complete(completion, None)

    def release(self) -> None:
        """Drop the connection at once and deliver nothing more."""
        self._bind_tracks(False)
        self._stop_hearing()
        conn, self._conn = self._conn, None
        if conn is not None:
            self._sdk.call(conn.close)
        self._handler = None

    def _stop_hearing(self) -> None:
        DEVICES.joined.discard(self)
        if DEVICES.speaker is not None:
            DEVICES.speaker._listen(id(self), False)

    def _on_room_event(self, callback: str, args: list[Any]) -> None:
        if callback == "_left":
            self._conn = None
            self._bind_tracks(False)
            self._stop_hearing()
            self._participants.clear()
            self._emit("on_error", str(args[0]) if args else "left the call")
            self._set_state(CallState.LEFT)
            return
        if callback in ("on_participant_joined", "on_participant_updated") and args:
            self._participants[args[0]["id"]] = args[0]
        elif callback == "on_participant_left" and args:
            self._participants.pop(args[0]["id"], None)
            for key in [k for k in self._renderers if k[0] == args[0]["id"]]:
                del self._renderers[key]
            if DEVICES.speaker is not None:
                DEVICES.speaker._forget(id(self), args[0]["id"])
        elif callback == "on_active_speaker_changed" and args:
            self._active_speaker = args[0]
        self._emit(callback, *args)
