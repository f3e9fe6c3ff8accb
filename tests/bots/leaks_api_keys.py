"""A bot of your own started by ``/bots/start`` that puts the request's ``api_keys`` (Daily
Bots' top-level keys, in its ``runner_args.body``) into what it logs and raises, each
between angle brackets (``openai<...>``), so a test can check that only the scrubber's
marker reached a log line or the session's error, without knowing the value."""

from __future__ import annotations

from typing import Any

from loguru import logger


async def bot(runner_args: Any) -> None:
    given = runner_args.body["api_keys"]
    quoted = " ".join(f"{provider}<{key}>" for provider, key in sorted(given.items()))
    logger.error(f"leaking the request's api_keys: {quoted}")
    raise RuntimeError(f"refused with {quoted}")
