"""Pipecat's DailyTransport, unmodified, runs on sandbox.client as its ``daily``.

The bot runs in its own process (``daily`` is swapped in ``sys.modules`` before Pipecat is
imported, which must not leak into other tests); the sandbox and a synthetic caller run
here. The caller speaks a marked tone and must hear its own frames come back through the
bot's ``Pipeline([transport.input(), Echo(), transport.output()])`` (``Echo`` turns
the input audio frames into output ones), both ways Pipecat listens:
one renderer per participant (``audio_in_user_tracks``, the default) and the virtual
speaker (``audio_in_user_tracks=False``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.caller import Caller, CallerOptions
from tests.conftest import DailyRest
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

REPO = Path(__file__).resolve().parents[2]

ECHO_BOT = r'''
import asyncio, json, sys

import sandbox.client

sys.modules["daily"] = sandbox.client  # before Pipecat's daily transport is imported

from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner


class Echo(FrameProcessor):
    """What the bot hears becomes what it says (the output transport plays only output audio)."""

    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


async def main(room_url: str, user_tracks: bool) -> None:
    transport = DailyTransport(room_url, None, "echo-bot", DailyParams(
        audio_in_enabled=True, audio_out_enabled=True, audio_in_user_tracks=user_tracks))
    # 16 kHz both ways: the caller's frame markers survive only if no sample is altered.
    worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
                            idle_timeout_secs=None)
    seen = {"joined": False, "left": False}

    @transport.event_handler("on_joined")
    async def on_joined(transport, data):
        seen["joined"] = True

    @transport.event_handler("on_participant_left")
    async def on_participant_left(transport, participant, reason):
        seen["left"] = True
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(runner.run(), 25)
    print(json.dumps({"daily": sys.modules["daily"].__name__, **seen}))


asyncio.run(main(sys.argv[1], sys.argv[2] == "user-tracks"))
'''


async def _run_bot(room_url: str, mode: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_BOT, room_url, mode, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _wait_for_bot(rest: DailyRest, room: str, bot: asyncio.subprocess.Process) -> None:
    """Until the bot is in the room (Pipecat listens to those who join after it, as bots
    that join first do); fails if the bot exits first."""
    async def present() -> int:
        if bot.returncode is not None:
            _, err = await bot.communicate()
            pytest.fail(f"the bot exited before joining: {err.decode()[-3000:]}")
        return int((await rest.ok("GET", f"/rooms/{room}/presence"))["total_count"])

    await wait_until(present, 15, "the bot in the room")


@pytest.mark.parametrize("mode", ["user-tracks", "speaker"])
async def test_pipecat_echo_bot_on_sandbox_client_echoes_a_caller(sandbox: Any, mode: str) -> None:
    rest = DailyRest(sandbox.api_url)
    room = await rest.ok("POST", "/rooms", json={"name": f"pipecat-echo-{mode}"})
    bot = await _run_bot(room["url"], mode)
    caller = Caller(CallerOptions(room_url=room["url"], tone_hz=440.0, seconds=1.0,
                                  await_echo=True, await_echo_timeout_s=5.0))
    try:
        await _wait_for_bot(rest, room["name"], bot)
        await caller.join()
        try:
            await caller.speak()
        finally:
            await caller.leave(linger_s=0.5)
        out, err = await asyncio.wait_for(bot.communicate(), 20)
    finally:
        await rest.close()
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert bot.returncode == 0, err.decode()[-3000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report == {"daily": "sandbox.client", "joined": True, "left": True}
    # Every marked frame of the tone came back, unaltered (pacing may drop none).
    assert caller.frames_sent == 50
    assert caller.echoes >= 48, caller.summary()
