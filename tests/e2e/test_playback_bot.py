"""The playback bot: a profile whose WAV cannot be played stops start-up, a WAV that goes
bad later fails the session instead of leaving a silent bot, and decoding stays off the
event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Any

import pytest

from callfleet import audio
from callfleet.audio import resample, tone, write_wav
from supervisor import profiles
from supervisor.bots import playback
from supervisor.bots.playback import PlaybackBot
from supervisor.config import ConfigError
from tests.conftest import REPO


class FakeContext:
    """The session as the bot sees it; records the audio sent and how the bot ended it."""

    def __init__(self, sample_rate: int = 16000, channels: int = 1, fail_after: int | None = None) -> None:
        self.session_id = "s1"
        self.sample_rate, self.channels = sample_rate, channels
        self.sent: list[bytes] = []
        self.ended: list[str] = []
        self.failed: list[str] = []
        self.done = asyncio.Event()
        self.fail_after = fail_after

    def send_audio(self, pcm: Any, sample_rate: int, channels: int) -> bool:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise RuntimeError("the worker's socket went away")
        self.sent.append(bytes(pcm))
        return True

    def end(self, reason: str) -> None:
        self.ended.append(reason)
        self.done.set()

    def fail(self, detail: str) -> None:
        self.failed.append(detail)
        self.done.set()

    def next_id(self) -> int:
        return 1


def playback_profile(**keys: Any) -> str:
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in keys.items())
    return f'[profiles.greeting]\nkind = "playback"\n{body}\n'


def greeting_wav(tmp_path: Path, seconds: float = 0.1, rate: int = 8000, channels: int = 1) -> Path:
    path = tmp_path / "greeting.wav"
    pcm = tone(300, seconds, rate)
    if channels == 2:
        pcm = b"".join(pcm[i : i + 2] * 2 for i in range(0, len(pcm), 2))
    write_wav(path, pcm, rate, channels)
    return path


# -- profiles load ---------------------------------------------------------------------------------


def test_a_playback_profile_with_a_playable_wav_loads(tmp_path: Path) -> None:
    wav = greeting_wav(tmp_path)
    loaded = profiles.parse(playback_profile(wav=str(wav), then="stay", start="joined"))
    assert loaded.profiles["greeting"].config == {"wav": str(wav), "then": "stay", "start": "joined"}


def test_the_shipped_profiles_still_load() -> None:
    assert profiles.load(REPO / "configs" / "profiles.toml").profiles["playback"].kind == "playback"


def _eight_bit_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 800)


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "profiles.greeting.wav: cannot read .*: No such file or directory"),
    (lambda p: p.write_text("not audio"), "profiles.greeting.wav: .*not a PCM WAV file"),
    (lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "profiles.greeting.wav: .*not a PCM WAV file"),
    (lambda p: greeting_wav(p.parent, channels=2), "profiles.greeting.wav: .*2 channels; playback needs a mono WAV"),
    (_eight_bit_wav, "profiles.greeting.wav: .*8-bit samples; only 16-bit PCM WAV is supported"),
    (lambda p: write_wav(p, b"", 16000), "profiles.greeting.wav: .*holds no audio"),
    (lambda p: p.mkdir(), "profiles.greeting.wav: cannot read"),
])
def test_a_playback_profile_whose_wav_cannot_be_played_is_a_config_error(tmp_path: Path, make: Any,
                                                                          message: str) -> None:
    wav = tmp_path / "greeting.wav"
    make(wav)
    with pytest.raises(ConfigError, match=message):
        profiles.parse(playback_profile(wav=str(wav)))


@pytest.mark.parametrize(("keys", "message"), [
    ({"then": "linger"}, "profiles.greeting.then: expected one of 'leave', 'stay', got 'linger'"),
    ({"start": "later"}, "profiles.greeting.start: expected one of 'first_participant', 'joined', got 'later'"),
    ({"tone_hz": "loud"}, "profiles.greeting.tone_hz: expected a number"),
    ({"seconds": 0}, "profiles.greeting.seconds: expected a number"),
    ({"wave": "greeting.wav"}, "profiles.greeting.wave: unknown key for a playback bot"),
    ({"wav": ""}, "profiles.greeting.wav: expected a path to a WAV file"),
])
def test_a_playback_profile_with_a_bad_key_is_a_config_error_naming_it(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        profiles.parse(playback_profile(**keys))


def test_supervisor_exits_2_naming_the_profile_whose_wav_is_missing(tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text(playback_profile(wav=str(tmp_path / "gone.wav")))
    (tmp_path / "sandbox.toml").write_text(
        f'[supervisor]\nrun_dir = "{tmp_path / "run"}"\nprofiles = "{tmp_path / "profiles.toml"}"\n')
    result = subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(tmp_path / "sandbox.toml")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "profiles.greeting.wav: cannot read" in result.stderr and "No such file or directory" in result.stderr


# -- in a session ----------------------------------------------------------------------------------


async def test_a_wav_is_played_in_full_at_the_session_rate_then_the_bot_leaves(tmp_path: Path) -> None:
    wav = greeting_wav(tmp_path, seconds=0.1, rate=8000)
    ctx = FakeContext()
    bot = PlaybackBot(ctx, {"wav": str(wav)})
    await bot.on_joined(None)
    await bot.on_first_participant_joined({"id": "p1"})
    await asyncio.wait_for(ctx.done.wait(), 10)
    assert ctx.ended == ["playback finished"] and ctx.failed == []
    expected = resample(tone(300, 0.1, 8000), 8000, 16000)
    assert len(ctx.sent) == 5 and b"".join(ctx.sent) == expected  # 100 ms = five 20 ms frames
    await bot.close()


async def test_a_tone_is_played_sample_for_sample(tmp_path: Path) -> None:
    ctx = FakeContext()
    bot = PlaybackBot(ctx, {"tone_hz": 440, "seconds": 0.05, "start": "joined"})
    await bot.on_joined(None)
    await asyncio.wait_for(ctx.done.wait(), 10)
    played = b"".join(ctx.sent)
    assert played == tone(440, 0.05, 16000).ljust(3 * 640, b"\0")  # 50 ms: two frames and a padded half
    await bot.close()


async def test_session_fails_when_the_wav_is_gone_by_the_time_the_bot_joins(tmp_path: Path) -> None:
    wav = greeting_wav(tmp_path)
    profiles.parse(playback_profile(wav=str(wav)))  # fine when profiles loaded ...
    wav.unlink()  # ... deleted before this session
    ctx = FakeContext()
    bot = PlaybackBot(ctx, {"wav": str(wav)})
    await bot.on_joined(None)
    await asyncio.wait_for(ctx.done.wait(), 10)  # no participant needed to find out
    assert ctx.ended == [] and len(ctx.failed) == 1
    assert "No such file or directory" in ctx.failed[0] and str(wav) in ctx.failed[0]
    await bot.on_first_participant_joined({"id": "p1"})
    await asyncio.sleep(0)
    assert len(ctx.failed) == 1 and ctx.sent == []  # failed once, and never played
    await bot.close()


async def test_session_fails_with_the_error_when_playback_breaks_mid_way(tmp_path: Path) -> None:
    ctx = FakeContext(fail_after=3)
    bot = PlaybackBot(ctx, {"tone_hz": 440, "seconds": 1})
    await bot.on_joined(None)
    await bot.on_first_participant_joined({"id": "p1"})
    await asyncio.wait_for(ctx.done.wait(), 10)
    assert ctx.failed == ["playback failed: RuntimeError: the worker's socket went away"]
    assert ctx.ended == [] and len(ctx.sent) == 3
    await bot.close()


async def test_wav_is_decoded_once_and_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = greeting_wav(tmp_path)
    decoded_on: list[int] = []

    def watched_read_wav(path: Path) -> tuple[bytes, int, int]:
        decoded_on.append(threading.get_ident())
        return audio.read_wav(path)

    monkeypatch.setattr(playback, "read_wav", watched_read_wav)
    for _ in range(3):  # three sessions of the same profile
        ctx = FakeContext()
        bot = PlaybackBot(ctx, {"wav": str(wav), "start": "joined"})
        await bot.on_joined(None)
        await asyncio.wait_for(ctx.done.wait(), 10)
        assert ctx.ended == ["playback finished"]
        await bot.close()
    assert len(decoded_on) == 1 and decoded_on[0] != threading.get_ident()
