"""Pipecat Cloud-style bots that put every secret they were given into what they log and
raise: the bot's meeting token, its Daily proxy key (``DAILY_API_KEY``), its profile's
secret (``LEAKY_SECRET``) and the key its request body brought (``openai_api_key``). Each
is written between angle brackets (``token<...>``), so a test can check that whatever
reached a log line or an error there is the scrubber's marker, without knowing the value.

* ``bot_leaks_at_once``: logs (loguru, as Pipecat does) and raises before joining.
* ``bot_leaks_in_call``: joins with its own ``DailyTransport``, then logs and raises.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from loguru import logger
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.runner.types import RunnerArguments
from pipecat.transports.daily.transport import DailyParams, DailyTransport
from pipecat.workers.runner import WorkerRunner

PROFILE_SECRET_ENV = "LEAKY_SECRET"


class LeakError(RuntimeError):
    """What the bots raise, quoting their secrets."""


def everything(runner_args: RunnerArguments) -> str:
    body = runner_args.body if isinstance(runner_args.body, dict) else {}
    return (f"token<{runner_args.token}> proxy_key<{os.environ.get('DAILY_API_KEY', '')}> "
            f"profile_secret<{os.environ.get(PROFILE_SECRET_ENV, '')}> byo_key<{body.get('openai_api_key', '')}>")


def leak(runner_args: RunnerArguments, where: str) -> None:
    logger.error(f"leaky bot {where}: {everything(runner_args)}")
    raise LeakError(f"{where} with {everything(runner_args)}")


async def bot_leaks_at_once(runner_args: RunnerArguments) -> None:
    leak(runner_args, "failed before joining")


async def bot_leaks_in_call(runner_args: RunnerArguments) -> None:
    transport = DailyTransport(runner_args.room_url, runner_args.token, "Leaky bot",
                               DailyParams(audio_in_enabled=True, audio_out_enabled=True))
    worker = PipelineWorker(Pipeline([transport.input(), transport.output()]))
    joined = asyncio.Event()

    @transport.event_handler("on_joined")
    async def on_joined(transport: Any, data: Any) -> None:
        joined.set()

    async def fail_in_call() -> None:
        await asyncio.wait_for(joined.wait(), 15)
        leak(runner_args, "failed in the call")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), fail_in_call())  # the first error propagates
