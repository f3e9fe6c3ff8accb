"""Pipecat Cloud-style test bots that write what happened to them, one JSON line per
event, to the file named by ``$CALLFLEET_TEST_BOT_RECORD`` (the supervisor's environment,
inherited by its workers). Each joins with its own ``DailyTransport``, as a user's bot does.

* ``bot``: echoes; records its ``runner_args``, its environment and, when the body asks
  (``{"probe_rest": "FOREIGN_ROOM"}``), what ``DailyRESTHelper`` gets from the Daily
  proxy. When it ends it records ``cancelled`` (CancelledError reached it) or ``returned``
  with ``cancelled_by_host``: Pipecat's ``WorkerRunner.run()`` swallows the cancellation,
  so a cancelled bot returns, but its task still counts the cancel request.
* ``bot_plain``: the same echo, for a dial-in call, without ``dialin_settings`` (the
  supervisor forwards the call).
* ``bot_raises``: joins, then raises ``BotExploded`` while its pipeline still runs.
* ``bot_ends_then_returns`` / ``bot_ends_then_raises``: joins, ends its own pipeline (its
  transport leaves the call, as every Pipecat bot does on its way out), then returns or
  raises.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.transports.daily.utils import DailyRESTHelper
from pipecat.workers.runner import WorkerRunner

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"
SAMPLE_RATE = 16000


class BotExploded(RuntimeError):
    """What ``bot_raises`` raises once it has joined."""


def record(event: str, **data: Any) -> None:
    path = os.environ.get(RECORD_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **data}, default=str) + "\n")


class Echo(FrameProcessor):
    """What the bot hears becomes what it says."""

    async def process_frame(self, frame: Any, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


def echo_pipeline(runner_args: RunnerArguments) -> tuple[DailyTransport, PipelineWorker, asyncio.Event]:
    transport = DailyTransport(runner_args.room_url, runner_args.token, "Test bot",
                               DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE))
    joined = asyncio.Event()

    @transport.event_handler("on_joined")
    async def on_joined(transport: Any, data: Any) -> None:
        joined.set()

    return transport, worker, joined


async def probe_rest(runner_args: RunnerArguments, foreign_room: str) -> dict[str, Any]:
    """What the Daily proxy answers this bot, through Pipecat's own REST helper."""
    key, url = os.environ["DAILY_API_KEY"], os.environ["DAILY_API_URL"]
    found: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        helper = DailyRESTHelper(daily_api_key=key, daily_api_url=url, aiohttp_session=http)
        own = await helper.get_room_from_url(runner_args.room_url)
        found["own_room"] = own.name
        # owner=False: Pipecat asks for an owner token by default, and the proxy mints none.
        found["own_token"] = await helper.get_token(runner_args.room_url, expiry_time=600, owner=False)
        async with http.get(f"{url}/rooms/{foreign_room}", headers={"Authorization": f"Bearer {key}"}) as r:
            found["foreign_room"] = {"status": r.status, "body": await r.json(content_type=None)}
        try:
            await helper.get_token(f"{runner_args.room_url.rsplit('/', 1)[0]}/{foreign_room}")
            found["foreign_token"] = "minted"
        except Exception as exc:  # the helper raises a bare Exception with the status in its text
            found["foreign_token"] = str(exc)
    return found


async def _echo_until_ended(runner_args: RunnerArguments) -> None:
    _, worker, _ = echo_pipeline(runner_args)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    try:
        await runner.run()
    except asyncio.CancelledError:
        record("cancelled", session_id=runner_args.session_id)
        raise
    task = asyncio.current_task()
    record("returned", session_id=runner_args.session_id,
           cancelled_by_host=task is not None and task.cancelling() > 0)


async def bot(runner_args: RunnerArguments) -> None:
    record("start", session_id=runner_args.session_id, room_url=runner_args.room_url, token=runner_args.token,
           body=runner_args.body, api_key=os.environ.get("DAILY_API_KEY"), api_url=os.environ.get("DAILY_API_URL"),
           environ=dict(os.environ))
    logger.info(f"recording bot started for session {runner_args.session_id}")
    body = runner_args.body if isinstance(runner_args.body, dict) else {}
    if body.get("probe_rest"):
        record("rest", session_id=runner_args.session_id, **await probe_rest(runner_args, body["probe_rest"]))
    await _echo_until_ended(runner_args)


async def bot_plain(runner_args: RunnerArguments) -> None:
    """A dial-in bot that leaves forwarding the call to its host (no dialin_settings)."""
    record("start", session_id=runner_args.session_id, body=runner_args.body)
    await _echo_until_ended(runner_args)


async def bot_raises(runner_args: RunnerArguments) -> None:
    _, worker, joined = echo_pipeline(runner_args)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)

    async def explode() -> None:
        await asyncio.wait_for(joined.wait(), 15)
        await asyncio.sleep(0.5)  # in the call a moment, as a real bot is
        raise BotExploded(f"session {runner_args.session_id} blew up on purpose")

    await asyncio.gather(runner.run(), explode())  # the first error propagates; the pipeline still runs


async def _join_then_end(runner_args: RunnerArguments) -> None:
    """Join with a running pipeline, then end it: the transport leaves; the bot goes on."""
    _, worker, joined = echo_pipeline(runner_args)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    await asyncio.wait_for(joined.wait(), 15)
    await asyncio.sleep(0.5)
    await worker.cancel()
    await run


async def bot_ends_then_returns(runner_args: RunnerArguments) -> None:
    await _join_then_end(runner_args)
    record("returned", session_id=runner_args.session_id)


async def bot_ends_then_raises(runner_args: RunnerArguments) -> None:
    await _join_then_end(runner_args)
    raise BotExploded(f"session {runner_args.session_id} blew up after its pipeline ended")


async def bot_raises_at_once(runner_args: RunnerArguments) -> None:
    """A bot that fails before its transport joins (a bad config, a missing key)."""
    raise BotExploded(f"session {runner_args.session_id} could not even start")
