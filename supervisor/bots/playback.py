"""``playback``: plays a WAV file or a tone into the call, paced in real time, then leaves
or stays.

Config: ``wav`` (a mono 16-bit PCM file, resampled to the session rate) or ``tone_hz``
with ``seconds``; ``then`` = ``"leave"`` (default) or ``"stay"``; ``start`` =
``"first_participant"`` (default: greet the first human, as Pipecat bots do) or ``"joined"``.

A profile's config is checked when profiles load (``check_config``), so a missing or
unreadable WAV stops start-up instead of making a silent bot. A WAV that goes bad after
that (deleted, replaced) fails the session with the error rather than leaving it silent.
The WAV is decoded and resampled once per (file version, rate) in a thread, never on the
event loop that forwards every session's audio.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import structlog

from callfleet.audio import WavError, read_wav, resample, tone, wav_info
from supervisor.bots.base import Bot, BotConfigError

log = structlog.get_logger("supervisor.bots.playback")

LEAD_FRAMES = 2  # sent ahead of real time so the worker's pacing buffer never runs dry
FRAME_MS = 20
KEYS = frozenset({"wav", "tone_hz", "seconds", "then", "start"})
THEN = ("leave", "stay")
START = ("first_participant", "joined")
MAX_SECONDS = 14400  # a tone never outlasts the longest session


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(config: dict[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    value = config.get(key, allowed[0])
    if value not in allowed:
        raise BotConfigError(key, f"expected one of {', '.join(repr(a) for a in allowed)}, got {value!r}")


def check_wav(path: Path) -> None:
    """Check that ``path`` is a WAV the bot can play: readable, 16-bit PCM, mono, not empty.

    Raises ``OSError`` if it cannot be read, ``WavError`` otherwise."""
    info = wav_info(path)
    if info.channels != 1:
        raise WavError(f"{info.channels} channels; playback needs a mono WAV")
    if info.sample_rate <= 0 or info.frames == 0:
        raise WavError("the file holds no audio")


def _upmix(pcm: bytes, channels: int) -> bytes:
    # Mono into an N-channel session: the same sample on every channel.
    if channels == 1:
        return pcm
    return np.repeat(np.frombuffer(pcm, dtype="<i2"), channels).tobytes()


@functools.lru_cache(maxsize=8)
def _decoded(path: str, mtime_ns: int, size: int, rate: int, channels: int) -> bytes:
    # Keyed by the file's version too, so a WAV replaced on disk is decoded afresh.
    pcm, wav_rate, wav_channels = read_wav(Path(path))
    if wav_channels != 1:
        raise WavError(f"{path}: {wav_channels} channels; playback needs a mono WAV")
    if not pcm:
        raise WavError(f"{path}: the file holds no audio")
    return _upmix(resample(pcm, wav_rate, rate), channels)


def load_wav(path: Path, rate: int, channels: int) -> bytes:
    """The WAV's samples at ``rate`` and ``channels``, decoded once per file version (blocking).

    Raises ``OSError`` if it cannot be read, ``WavError`` if it is not a mono 16-bit WAV."""
    st = os.stat(path)
    return _decoded(str(Path(path).resolve()), st.st_mtime_ns, st.st_size, rate, channels)


class PlaybackBot(Bot):
    kind: ClassVar[str] = "playback"

    def __init__(self, ctx: Any, config: dict[str, Any]) -> None:
        super().__init__(ctx, config)
        self.then = config.get("then", "leave")
        self.start_on = config.get("start", "first_participant")
        self._audio: asyncio.Task[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.frames_played = 0
        self.failure: str | None = None

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Raises ``BotConfigError`` naming the key that cannot be played as configured."""
        unknown = sorted(set(config) - KEYS)
        if unknown:
            raise BotConfigError(unknown[0], f"unknown key for a playback bot (known: {', '.join(sorted(KEYS))})")
        _choice(config, "then", THEN)
        _choice(config, "start", START)
        wav = config.get("wav")
        if wav is not None:
            if not isinstance(wav, str) or not wav:
                raise BotConfigError("wav", f"expected a path to a WAV file, got {wav!r}")
            if "tone_hz" in config or "seconds" in config:
                raise BotConfigError("wav", "give either wav or tone_hz/seconds, not both")
            try:
                check_wav(Path(wav))
            except OSError as exc:
                raise BotConfigError("wav", f"cannot read {wav}: {exc.strerror or exc}") from None
            except WavError as exc:
                raise BotConfigError("wav", f"{wav}: {exc}") from None
            return
        hz = config.get("tone_hz", 440)
        if not _is_number(hz) or not 0 < hz <= 20000:
            raise BotConfigError("tone_hz", f"expected a number in (0, 20000], got {hz!r}")
        seconds = config.get("seconds", 3)
        if not _is_number(seconds) or not 0 < seconds <= MAX_SECONDS:
            raise BotConfigError("seconds", f"expected a number in (0, {MAX_SECONDS}], got {seconds!r}")

    async def on_joined(self, join_data: Any) -> None:
        self._prepare()  # decode while the bot waits for its first participant
        if self.start_on == "joined":
            self._start()

    async def on_first_participant_joined(self, participant: dict[str, Any]) -> None:
        if self.start_on != "joined":
            self._start()

    def _prepare(self) -> asyncio.Task[bytes | None]:
        if self._audio is None:
            self._audio = asyncio.get_running_loop().create_task(self._load())
            self._audio.add_done_callback(self._loaded)
        return self._audio

    async def _load(self) -> bytes | None:
        """The WAV at the session's format, or None for a tone (made frame by frame)."""
        wav = self.config.get("wav")
        if not wav:
            return None
        return await asyncio.to_thread(load_wav, Path(wav), self.ctx.sample_rate, self.ctx.channels)

    def _loaded(self, task: asyncio.Task[bytes | None]) -> None:
        # Fail at once rather than when (if ever) the first participant arrives.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(f"cannot play {self.config.get('wav')}: {exc}")

    def _fail(self, detail: str) -> None:
        if self.failure is None:
            self.failure = detail
            log.error("playback failed", session_id=self.ctx.session_id, error=detail)
            self.ctx.fail(detail)

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._play())

    async def _play(self) -> None:
        try:
            await self._pace(await self._prepare())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever stops playback ends the session with the error: never a silent bot.
            self._fail(f"playback failed: {type(exc).__name__}: {exc}")
            return
        if self.then == "leave":
            self.ctx.end("playback finished")

    async def _pace(self, pcm: bytes | None) -> None:
        rate, channels = self.ctx.sample_rate, self.ctx.channels
        samples = rate * FRAME_MS // 1000
        size = samples * 2 * channels
        if pcm is not None:
            total = len(pcm) // (2 * channels)
        else:
            hz = float(self.config.get("tone_hz", 440))
            total = int(round(float(self.config.get("seconds", 3)) * rate))
        started = time.monotonic()
        for i, first in enumerate(range(0, total, samples)):
            due = started + (i - LEAD_FRAMES) * FRAME_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if pcm is not None:
                chunk = pcm[first * 2 * channels : (first + samples) * 2 * channels]
            else:
                n = min(samples, total - first)
                chunk = _upmix(tone(hz, n / rate, rate, phase0=first), channels)
            if self.ctx.send_audio(chunk.ljust(size, b"\0"), rate, channels):
                self.frames_played += 1
        # Let the last frames play out of the worker's buffer before leaving.
        await asyncio.sleep(max(0.0, started + total / rate - time.monotonic()) + 0.2)

    async def close(self) -> None:
        for task in (self._task, self._audio):
            if task is not None:
                task.cancel()
