"""A Pipecat Cloud-style bot that loops on the Daily proxy, as a careless or hostile bot
would: it asks for a token valid for a month and for an owner's token, then joins its
room (echoing, so its session runs) while ``LOOPS`` tasks ask for the room's presence
over and over until the bot is cancelled.

It reports on its log, which its host passes to the supervisor's log as any bot's:

* ``proxy-hammer SESSION token exp=UNIX owner=STATUS``: the month-long token's ``exp``
  as minted (read from the token itself), and the HTTP status the owner's token got;
* ``proxy-hammer SESSION answered ok=N limited=N other=N``, twice a second: how many of
  its presence requests were answered 200, 429 and anything else so far.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections import Counter
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

LOOPS = 20
PAUSE_S = 0.1  # between one loop's requests: enough to flood a 2-a-second quota, not the test machine's CPUs
REPORT_EVERY_S = 0.5
MONTH_S = 30 * 24 * 3600
SAMPLE_RATE = 16000


class Echo(FrameProcessor):
    async def process_frame(self, frame: Any, direction: Any) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            frame = OutputAudioRawFrame(audio=frame.audio, sample_rate=frame.sample_rate,
                                        num_channels=frame.num_channels)
        await self.push_frame(frame, direction)


def token_exp(token: str) -> Any:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("exp")


async def mint_tokens(http: aiohttp.ClientSession, session_id: str, room_url: str) -> None:
    helper = DailyRESTHelper(daily_api_key=os.environ["DAILY_API_KEY"], daily_api_url=os.environ["DAILY_API_URL"],
                             aiohttp_session=http)
    month = await helper.get_token(room_url, expiry_time=MONTH_S, owner=False)
    try:
        await helper.get_token(room_url)  # Pipecat's default: an owner's token
        owner = "200"
    except Exception as exc:  # the helper raises a bare Exception with the status in its text
        found = re.search(r"status: (\d+)", str(exc))
        owner = found.group(1) if found else "error"
    logger.info(f"proxy-hammer {session_id} token exp={token_exp(month)} owner={owner}")


async def hammer(http: aiohttp.ClientSession, room_url: str, answered: Counter[str]) -> None:
    url = f"{os.environ['DAILY_API_URL']}/rooms/{room_url.rsplit('/', 1)[1]}/presence"
    headers = {"Authorization": f"Bearer {os.environ['DAILY_API_KEY']}"}
    while True:
        async with http.get(url, headers=headers) as r:
            await r.read()
            answered[{200: "ok", 429: "limited"}.get(r.status, "other")] += 1
        await asyncio.sleep(PAUSE_S)


async def report(session_id: str, answered: Counter[str]) -> None:
    while True:
        await asyncio.sleep(REPORT_EVERY_S)
        logger.info(f"proxy-hammer {session_id} answered ok={answered['ok']} "
                    f"limited={answered['limited']} other={answered['other']}")


async def bot(runner_args: RunnerArguments) -> None:
    transport = DailyTransport(runner_args.room_url, runner_args.token, "Hammer bot",
                               DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    worker = PipelineWorker(Pipeline([transport.input(), Echo(), transport.output()]),
                            params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE))
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    answered: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        await mint_tokens(http, runner_args.session_id, runner_args.room_url)
        loops = [asyncio.create_task(hammer(http, runner_args.room_url, answered)) for _ in range(LOOPS)]
        loops.append(asyncio.create_task(report(runner_args.session_id, answered)))
        try:
            await runner.run()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
