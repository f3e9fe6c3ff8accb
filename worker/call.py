"""The one call client a worker hosts, driven from the worker's asyncio loop.

Threading rule (reference/daily.md): events, completions and audio arrive on SDK threads.
Nothing here calls the client from those threads; every callback is handed to the loop
(``worker.sdk_threads``), and every command waits for its completion on the loop with a
timeout, because completions are known to go missing. The audio the call delivers is the
renderers' (``worker.renderers``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import structlog

from protocol.messages import (
    COMMANDS,
    AudioSettings,
    CallStateUpdated,
    ClearAudioRenderer,
    Command,
    Completion,
    Err,
    ErrCode,
    Event,
    Join,
    Leave,
    Ok,
    ParticipantJoined,
    ParticipantLeft,
    SetAudioRenderer,
)
from worker.audio_out import AudioWriter
from worker.renderers import AudioRenderers
from worker.sdk_threads import CommandFailed, completed, completion_future, forwarding_handler_class

log = structlog.get_logger("worker.call")

MIC_TRACK = "callfleet-mic"
DEFAULT_TIMEOUT_S = 10.0


class CallHost:
    """Owns the backend's ``CallClient``, its custom microphone and its audio renderers.

    ``emit_event(event)`` and ``emit_audio(header_bytes, pcm)`` are called on the loop.
    """

    def __init__(
        self,
        backend: ModuleType,
        loop: asyncio.AbstractEventLoop,
        *,
        emit_event: Callable[[Event], None],
        emit_audio: Callable[[bytes, bytes], None],
    ) -> None:
        self._backend = backend
        self._loop = loop
        self._emit_event = emit_event
        handler_cls = forwarding_handler_class(backend.EventHandler)
        self._handler = handler_cls(self._from_sdk_thread)
        self.client: Any = backend.CallClient(event_handler=self._handler)
        self.audio = AudioSettings()
        self._source: Any = None
        self._track: Any = None
        self._writer: AudioWriter | None = None
        self.joined = False
        self.joining = False
        self.call_state = "initialized"  # as last reported by on_call_state_updated
        self.calls_finished = 0
        self._auto_render = True
        self.renderers = AudioRenderers(loop, emit_audio)
        self._local_id: str | None = None
        self._early_joiners: list[dict[str, Any]] = []
        self.on_call_ended: Callable[[], None] | None = None
        self.hosted = False  # a hosted bot adopted the client (worker.hosted_daily)
        self._bot_join: asyncio.Future[Any] | None = None

    # -- a hosted bot's client (worker.hosted_daily) -------------------------------------

    def adopt(self, event_handler: Any) -> None:
        """A hosted bot made ``CallClient(event_handler=...)``: it is this client. The bot
        gets every callback too, and renders the audio it wants itself."""
        self._handler.also = event_handler
        self._auto_render = False
        self.hosted = True

    def bot_join_done(self, data: Any, error: Any) -> None:
        """SDK thread: the bot's own join completed."""
        self._loop.call_soon_threadsafe(self._bot_join_done, data, error)

    def _bot_join_done(self, data: Any, error: Any) -> None:
        if error:
            self._settle_bot_join(None, CommandFailed(ErrCode.SDK_ERROR, str(error)))
            return
        self.joined = True
        self._local_id = ((data or {}).get("participants") or {}).get("local", {}).get("id")
        self._settle_bot_join(data, None)

    def expect_bot_join(self) -> asyncio.Future[Any]:
        """A future for the hosted bot's join: its data, or ``CommandFailed``."""
        self._bot_join = self._loop.create_future()
        return self._bot_join

    def _settle_bot_join(self, data: Any, error: Exception | None) -> None:
        fut = self._bot_join
        if fut is not None and not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(data)

    def bot_left(self) -> None:
        """SDK thread: the bot's own leave completed."""
        self._loop.call_soon_threadsafe(self._call_over)

    # -- SDK threads -> loop ------------------------------------------------------------

    def _from_sdk_thread(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ParticipantJoined) and self._auto_render:
            if self.joined:
                self._render(event.participant)
            elif self.joining:
                # Arrived between the join's data and its completion: render once joined.
                self._early_joiners.append(event.participant)
        elif isinstance(event, ParticipantLeft):
            self.renderers.participant_left((event.participant or {}).get("id"))
        elif isinstance(event, CallStateUpdated):
            self.call_state = event.state or self.call_state
            if event.state == "left" and self.joined:
                # Ejected, room expired or deleted: the call ended without our leave().
                self._call_over()
        self._emit_event(event)

    # -- commands -------------------------------------------------------------------------

    async def execute(self, cmd: Command) -> Ok | Err:
        """Carry out one command; always answers, never raises."""
        try:
            if isinstance(cmd, Join):
                result = await self._join(cmd)
            elif isinstance(cmd, Leave):
                await self.leave(cmd.timeout_s)
                # The supervisor's accounting follows this count: only calls joined count.
                result = {"calls_done": self.calls_finished}
            elif isinstance(cmd, SetAudioRenderer):
                result = self._set_renderer(cmd)
            elif isinstance(cmd, ClearAudioRenderer):
                self.renderers.stop(cmd.participant_id, cmd.audio_source)
                result = None
            else:
                result = await self._call(cmd)
            return Ok(cmd.id, result)
        except CommandFailed as exc:
            return Err(cmd.id, exc.code, exc.message)
        except Exception as exc:
            log.exception("command failed", command=type(cmd).__name__)
            return Err(cmd.id, ErrCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    async def _call(self, cmd: Command) -> Any:
        method = getattr(self.client, cmd.method, None)
        if method is None:
            raise CommandFailed(ErrCode.UNSUPPORTED, f"{cmd.method} is not supported by this backend")
        kwargs = {f: getattr(cmd, f) for f in cmd.__struct_fields__ if f != "id"}
        if cmd.completion is Completion.NONE:
            return method(**kwargs)
        fut, completion = completion_future(self._loop)
        method(**kwargs, completion=completion)
        return await completed(fut, cmd.method, DEFAULT_TIMEOUT_S)

    async def _join(self, cmd: Join) -> Any:
        if self.joined or self.joining:
            raise CommandFailed(ErrCode.ALREADY_JOINED, "this worker is already in a call")
        self.audio = cmd.audio
        self._auto_render = cmd.auto_render
        self._ensure_microphone()
        settings = dict(cmd.client_settings or {})
        inputs = dict(settings.get("inputs") or {})
        inputs.setdefault("camera", False)
        inputs["microphone"] = {"isEnabled": True, "settings": {"customTrack": {"id": self._track.id}}}
        settings["inputs"] = inputs
        if cmd.user_name:
            self.client.set_user_name(cmd.user_name)
        fut, completion = completion_future(self._loop)
        self.joining = True
        self._early_joiners.clear()
        try:
            self.client.join(cmd.meeting_url, cmd.meeting_token, settings, completion=completion)
            data = await completed(fut, "join", cmd.timeout_s)
        finally:
            self.joining = False
        self.joined = True
        participants = (data or {}).get("participants") or {}
        local = participants.get("local") or {}
        self._local_id = local.get("id")
        self._unsubscribe_video()
        if cmd.auto_render:
            for pid, participant in participants.items():
                if pid != "local":
                    self._render(participant)
            for participant in self._early_joiners:
                self._render(participant)
        self._early_joiners.clear()
        return data

    def _ensure_microphone(self) -> None:
        if self._writer is not None and self._source is not None and (
            self._source.sample_rate == self.audio.sample_rate
            and self._source.channels == self.audio.channels
        ):
            self._writer.realtime_slack_ms = self.audio.realtime_slack_ms
            return
        if self._writer is not None:
            self._writer.close()
        self._source = self._backend.CustomAudioSource(self.audio.sample_rate, self.audio.channels)
        self._track = self._backend.CustomAudioTrack(self._source)
        self._writer = AudioWriter(
            self._source.write_frames,
            sample_rate=self.audio.sample_rate,
            channels=self.audio.channels,
            realtime_slack_ms=self.audio.realtime_slack_ms,
        )

    def _unsubscribe_video(self) -> None:
        # A bot renders no video; not receiving it saves bandwidth and CPU.
        def done(error: Any) -> None:
            if error:
                log.warning("could not unsubscribe video", error=str(error))

        try:
            self.client.update_subscription_profiles(
                {"base": {"camera": "unsubscribed", "screenVideo": "unsubscribed"}},
                completion=done,
            )
        except Exception:
            log.exception("update_subscription_profiles failed")

    def _render(self, participant: dict[str, Any]) -> None:
        pid = participant.get("id")
        info = participant.get("info") or {}
        if not pid or info.get("isLocal") or pid == self._local_id:
            return
        self._set_renderer(SetAudioRenderer(id=0, participant_id=pid))

    def _set_renderer(self, cmd: SetAudioRenderer) -> None:
        self.renderers.start(self.client, cmd, self.audio)

    def write_audio(self, pcm: bytes) -> bool:
        """Queue the bot's audio for the call; False if not in a call (frame dropped)."""
        if self._writer is None or not self.joined:
            return False
        self._writer.put(pcm)
        return True

    @property
    def frames_in(self) -> int:
        return self.renderers.frames_in

    @property
    def frames_out(self) -> int:
        return self._writer.frames_written if self._writer else 0

    @property
    def frames_dropped(self) -> int:
        return self._writer.frames_dropped + self._writer.frames_skipped if self._writer else 0

    @property
    def in_call(self) -> bool:
        """True while the SDK may hold a call: joined, joining, or a join that timed out."""
        return self.joined or self.joining or self.call_state in ("joining", "joined")

    async def leave(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Leave the call and wait for it (bounded). Not being in a call is not an error."""
        if not self.in_call:
            return None
        self.renderers.stop_all()
        if self._writer is not None:
            self._writer.clear()
        fut, completion = completion_future(self._loop)
        self.client.leave(completion=completion)
        try:
            await completed(fut, "leave", timeout_s)
        finally:
            self._call_over()
        return None

    def phone_call_over(self) -> None:
        """A hosted bot's phone call (``worker.phone_socket``) is over: the client took no
        part in it, but it counts towards ``sessions_per_worker`` as a call it joined does."""
        self.calls_finished += 1
        if self.on_call_ended is not None:
            self.on_call_ended()

    def _call_over(self) -> None:
        if not self.joined:
            return
        self.joined = False
        self.calls_finished += 1
        self.renderers.clear()
        if self.on_call_ended is not None:
            self.on_call_ended()

    def release(self) -> None:
        """Free the client and the custom track, in the order daily-python needs.

        Call only after ``leave`` completed (or timed out): never release while in a call.
        """
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        started = time.monotonic()
        try:
            self.client.release()
        except Exception:
            log.exception("release failed")
        log.debug("released", seconds=round(time.monotonic() - started, 3))
        self.client = None
        self._track = None
        self._source = None
        self._handler = None


def capabilities(backend: ModuleType) -> list[str]:
    """The commands this backend's client can carry out, for the handshake."""
    return sorted(
        {c.method for c in COMMANDS if c.method and hasattr(backend.CallClient, c.method)}
    )
