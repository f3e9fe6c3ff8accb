"""sandbox.client's video classes and virtual devices behave as daily-python's do.

Video answers the way Daily answers a room without video: sources, tracks and cameras
take frames (checked as daily checks them) and send nothing; a video renderer is never
called; a participant's camera reads "off". The virtual speaker hears the mix of the call
in real time; a virtual microphone named as ``deviceId`` in the inputs is heard by others.
What daily-python does offline was measured on the installed 0.36 (noted per test).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import sandbox.client as sc
from callfleet.audio import tone
from sandbox.caller import Caller, CallerOptions
from sandbox.sdk import loop
from sandbox.sdk.process import DEVICES
from tests.conftest import DailyRest
from tests.sdk_client import SdkTestClient, ensure_sdk
from tests.waiting import wait_until as wait_for


@pytest.fixture(autouse=True)
def fresh_devices() -> Iterator[None]:
    """Virtual devices are process-wide: each test starts and ends with none selected."""
    ensure_sdk()
    yield
    DEVICES.clear()


async def _room(rest: DailyRest, name: str) -> dict[str, Any]:
    return dict(await rest.ok("POST", "/rooms", json={"name": name}))


async def _completion(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Call with a completion; the completion's arguments, once it fires."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()
    call(*args, **kwargs, completion=lambda *a: loop.call_soon_threadsafe(fut.set_result, a))
    return await asyncio.wait_for(fut, 5)


# -- video sources, tracks, cameras, frames ------------------------------------------------

def test_custom_video_source_takes_frames_of_its_size_and_refuses_others() -> None:
    source = sc.CustomVideoSource(4, 2)
    assert (source.width, source.height, source.color_format) == (4, 2, "RGBA")
    assert source.write_frame(bytes(4 * 2 * 4)) is None
    assert source.frames_written == 1
    # daily 0.36's own words for both refusals
    with pytest.raises(ValueError, match="frame size mismatch: expected 32 bytes for 4x2 RGBA, got 3"):
        source.write_frame(bytes(3))
    with pytest.raises(ValueError, match="invalid color format 'BGR'. Valid formats: RGBA, BGRA, ARGB, ABGR, RGB, I420"):
        sc.CustomVideoSource(4, 2, "BGR")
    assert sc.CustomVideoSource(4, 2, "I420").write_frame(bytes(4 * 2 + 2 * 2 * 1)) is None
    assert sc.CustomVideoSource(4, 2, "RGB").write_frame(bytes(4 * 2 * 3)) is None


def test_virtual_camera_takes_any_frame_and_checks_its_color_format() -> None:
    camera = sc.Daily.create_camera_device("cam", 640, 480)
    assert (camera.name, camera.width, camera.height, camera.color_format) == ("cam", 640, 480, "RGBA")
    assert camera.write_frame(bytes(5)) is None  # daily's camera does not check the size either
    with pytest.raises(ValueError, match="invalid color format 'XYZ'"):
        sc.Daily.create_camera_device("cam2", 4, 2, "XYZ")


def test_frames_and_devices_cannot_be_created_but_through_daily() -> None:
    for cls in (sc.VideoFrame, sc.VirtualCameraDevice, sc.VirtualMicrophoneDevice, sc.VirtualSpeakerDevice):
        with pytest.raises(TypeError, match="cannot create"):
            cls()


def test_custom_video_tracks_follow_dailys_rules_before_a_join() -> None:
    """daily 0.36, offline: add succeeds and shows in inputs()["customVideo"], a second add
    of the name fails, update of an unknown name adds it, remove of an unknown name succeeds."""
    client = sc.CallClient()
    track = sc.CustomVideoTrack(sc.CustomVideoSource(2, 2))
    results = []
    done = threading.Event()

    def completion(error: Any) -> None:
        results.append(error)
        done.set()

    for call in (lambda: client.add_custom_video_track("v", track, completion),
                 lambda: client.add_custom_video_track("v", track, completion),
                 lambda: client.update_custom_video_track("w", track, completion),
                 lambda: client.remove_custom_video_track("nope", completion)):
        done.clear()
        call()
        assert done.wait(5)
    assert results == [None, 'Inputs(TrackNameAlreadyInUse("v"))', None, None]
    assert client.inputs()["customVideo"] == {
        name: {"isEnabled": True, "settings": {"customTrack": {"id": track.id}}} for name in ("v", "w")}
    client.release()


async def test_in_a_call_video_is_accepted_and_goes_nowhere_while_audio_flows(rest: DailyRest) -> None:
    room = await _room(rest, "video-room")
    bot, human = SdkTestClient(), SdkTestClient()
    await bot.join(room["url"])
    await human.join(room["url"])
    await wait_for(lambda: human.id in bot.client.participants(), what="bot sees human")
    source = sc.CustomVideoSource(8, 8)
    (error,) = await _completion(bot.client.add_custom_video_track, "screen", sc.CustomVideoTrack(source))
    assert error is None
    (error,) = await _completion(bot.client.update_inputs, {"camera": {"isEnabled": True, "settings": {"deviceId": "cam"}}})
    assert error is None
    assert bot.client.inputs()["camera"]["isEnabled"] is True
    frames: list[Any] = []
    human.client.set_video_renderer(bot.id, lambda *args: frames.append(args))
    human.client.set_video_renderer(bot.id, lambda *args: frames.append(args), video_source="screenVideo")
    human.render(bot.id)
    await asyncio.sleep(0.1)
    for _ in range(10):
        source.write_frame(bytes(8 * 8 * 4))
    pcm = tone(440, 0.2, 16000)
    await bot.write(pcm)
    await wait_for(lambda: sum(map(len, human.heard.get(bot.id, []))) >= len(pcm), what="the bot's audio")
    assert frames == []
    assert source.frames_written == 10
    assert human.client.participants()[bot.id]["media"]["camera"]["state"] == "off"
    assert bot.client.participants()["local"]["media"]["camera"]["state"] == "off"
    await human.leave()
    await bot.leave()


# -- virtual speaker and microphone ----------------------------------------------------------

def test_devices_need_init_and_a_known_speaker_name() -> None:
    with pytest.raises(RuntimeError, match="unable to select virtual speaker device"):
        sc.Daily.select_speaker_device("never-created")
    sdk, loop._sdk = loop._sdk, None
    try:
        with pytest.raises(RuntimeError, match="Daily.init"):
            sc.Daily.create_speaker_device("early")  # daily 0.36 crashes the process here
    finally:
        loop._sdk = sdk


def test_devices_outside_a_call_read_and_write_nothing_at_once() -> None:
    """daily 0.36, offline: a speaker reads b"" and a microphone writes 0 frames, at once."""
    speaker = sc.Daily.create_speaker_device("spk", 16000, 1)
    sc.Daily.select_speaker_device("spk")
    assert (speaker.name, speaker.sample_rate, speaker.channels) == ("spk", 16000, 1)
    assert speaker.read_frames(320) == b""
    got: list[bytes] = []
    done = threading.Event()
    speaker.read_frames(320, completion=lambda audio: (got.append(audio), done.set()))
    assert done.wait(5) and got == [b""]
    microphone = sc.Daily.create_microphone_device("mic", 16000, 1)
    assert (microphone.name, microphone.sample_rate, microphone.channels) == ("mic", 16000, 1)
    assert microphone.write_frames(bytes(3200)) == 0


async def test_selected_speaker_hears_the_call_mixed_in_real_time(rest: DailyRest) -> None:
    room = await _room(rest, "speaker-room")
    speaker = sc.Daily.create_speaker_device("spk", 16000, 1, non_blocking=True)
    sc.Daily.select_speaker_device("spk")
    bot = SdkTestClient()
    await bot.join(room["url"])
    callers = [Caller(CallerOptions(room_url=room["url"], tone_hz=hz, seconds=1.0, markers=False))
               for hz in (440.0, 660.0)]
    await asyncio.gather(*(c.join() for c in callers))
    speaking = asyncio.gather(*(c.speak() for c in callers))
    heard = b""
    while not speaking.done():
        (audio,) = await _completion(speaker.read_frames, 320)
        heard += audio
    await speaking
    await asyncio.gather(*(c.leave(linger_s=0) for c in callers))
    # 20 ms per read, paced by the device clock: about a second's worth, never a burst.
    assert 0.8 * 32000 <= len(heard) <= 1.3 * 32000
    import numpy as np

    samples = np.frombuffer(heard, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    peaks = sorted(freqs[np.argsort(spectrum)[-40:]])
    assert any(abs(f - 440) < 5 for f in peaks) and any(abs(f - 660) < 5 for f in peaks)  # both, mixed
    await bot.leave()
    assert speaker.read_frames(320) == b""  # out of the call again


async def test_virtual_microphone_named_in_the_inputs_is_heard_by_others(rest: DailyRest) -> None:
    room = await _room(rest, "microphone-room")
    microphone = sc.Daily.create_microphone_device("mic", 16000, 1)
    bot = SdkTestClient()
    settings = {"inputs": {"microphone": {"isEnabled": True, "settings": {"deviceId": "mic"}}}}
    data, error = await bot.call("join", room["url"], None, settings)
    assert error is None
    bot.id = data["participants"]["local"]["id"]
    human = SdkTestClient()
    await human.join(room["url"])
    human.render(bot.id)
    await asyncio.sleep(0.1)
    pcm = tone(440, 0.2, 16000)
    assert await asyncio.to_thread(microphone.write_frames, pcm) == len(pcm) // 2
    await wait_for(lambda: sum(map(len, human.heard.get(bot.id, []))) >= len(pcm), what="the microphone")
    assert b"".join(human.heard[bot.id]) == pcm
    await human.leave()
    await bot.leave()
