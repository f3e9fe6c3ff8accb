"""Server-side function handlers for a Daily Bots profile's ``functions`` (tests): called as
Pipecat calls a function handler, answering through ``params.result_callback``."""

from __future__ import annotations

from typing import Any

ANSWERED_BY = "the server"


async def get_weather(params: Any) -> None:
    """The weather wherever the LLM asked, always sunny; says who answered."""
    await params.result_callback({"conditions": "sunny", "location": params.arguments.get("location"),
                                  "answered_by": ANSWERED_BY})


def not_async(params: Any) -> None:
    """A handler Pipecat could not await: a profile naming it is refused."""
