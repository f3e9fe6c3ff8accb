"""Function calling in the built-in Daily Bots pipelines, as Daily Bots does it over RTVI.

The request's ``tools`` (``worker.daily_bots.tools``) go into the LLM context as Pipecat
``FunctionSchema`` s, and each function gets a handler on the LLM service:

- a server-side handler when the session's profile names one (``worker.daily_bots.handlers``);
- otherwise the RTVI client's: Pipecat's RTVI observer announces the call
  (``llm-function-call-started``, then ``llm-function-call-in-progress`` with the
  ``tool_call_id``, ``function_name`` and ``arguments``), the client answers with
  ``llm-function-call-result``, and the LLM goes on with its ``result``. A client that does
  not answer within the profile's ``client_function_timeout_s`` (10 s by default) gets the
  LLM a tool result saying so (``CLIENT_DID_NOT_ANSWER``), and the worker a log line.

``ClientFunctions`` sits right after the RTVI processor, which turns the client's answer into
a ``FunctionCallResultFrame`` and sends it down the pipeline to the context, as Pipecat does:
the frame completes the waiting handler on its way, and one that no call waits for (late,
after the timeout settled the call, or naming a server-side call) stops there. An
interruption cancels a client's call as it does any other (``llm-function-call-stopped``,
cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import Frame, FunctionCallResultFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.processors.frameworks.rtvi import RTVIFunctionCallReportLevel
from pipecat.services.llm_service import FunctionCallParams

from worker.daily_bots import handlers
from worker.daily_bots.tools import Tool

# The tool result of a client's call that got no answer: what the LLM, and so the user, hears.
CLIENT_DID_NOT_ANSWER = "The client did not answer this call of {name} within {timeout:g} seconds."


class ClientFunctions(FrameProcessor):
    """The calls waiting on the RTVI client: ``call`` is the LLM's handler for every function
    the client runs; the client's ``llm-function-call-result`` completes it."""

    def __init__(self, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_s = timeout_s
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def call(self, params: FunctionCallParams) -> None:
        """Wait for the client's result (the RTVI observer has announced the call); past the
        timeout, settle the call with a result saying the client did not answer."""
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[params.tool_call_id] = answered
        try:
            await asyncio.wait_for(answered, self.timeout_s)
            return  # the client's result frame is on its way to the context, as Pipecat's RTVI sends it
        except TimeoutError:
            logger.warning(f"function call {params.function_name} [{params.tool_call_id}]: the RTVI client did not "
                           f"answer within {self.timeout_s:g}s; the LLM is told so")
        finally:
            self._waiting.pop(params.tool_call_id, None)
        await params.result_callback(
            {"error": CLIENT_DID_NOT_ANSWER.format(name=params.function_name, timeout=self.timeout_s)})

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        # Downstream here, a result can only be the client's (RTVI is all that is upstream).
        if isinstance(frame, FunctionCallResultFrame) and direction is FrameDirection.DOWNSTREAM:
            answered = self._waiting.pop(frame.tool_call_id, None)
            if answered is None or answered.done():
                # It would settle nothing, or settle a call a second time: it stops here.
                logger.warning(f"llm-function-call-result for {frame.function_name} [{frame.tool_call_id}]: "
                               f"no such call is waiting (it ended, timed out, or runs on the server); ignored")
                return
            answered.set_result(None)
        await self.push_frame(frame, direction)


@dataclass
class Functions:
    """A pipeline's functions: what the LLM context advertises, who runs each, and what RTVI
    tells the client of them."""

    tools: list[Tool]
    server: dict[str, Callable[..., Any]] = field(default_factory=dict)
    client: ClientFunctions | None = None

    @property
    def schema(self) -> ToolsSchema | None:
        """The tools as Pipecat advertises them to the LLM (None: no tools)."""
        if not self.tools:
            return None
        return ToolsSchema(standard_tools=[FunctionSchema(name=t.name, description=t.description,
                                                          properties=t.properties, required=t.required)
                                           for t in self.tools])

    def processors(self) -> list[FrameProcessor]:
        """What goes right after the RTVI processor."""
        return [self.client] if self.client is not None else []

    def report_levels(self) -> dict[str, RTVIFunctionCallReportLevel]:
        """The RTVI observer's report level per function: the client is told the name and
        arguments of what it runs; of the server's calls only that they happen (Pipecat's default)."""
        levels = {"*": RTVIFunctionCallReportLevel.NONE}
        levels.update({t.name: RTVIFunctionCallReportLevel.ARGUMENTS for t in self.tools if t.name not in self.server})
        return levels

    def register(self, llm: Any) -> None:
        """Give ``llm`` (a Pipecat LLM service) a handler for every advertised function."""
        for tool in self.tools:
            handler = self.server.get(tool.name)
            if handler is None:
                assert self.client is not None
                handler = self.client.call
            llm.register_function(tool.name, handler)


def prepare(tools: Sequence[Tool], profile: handlers.ProfileFunctions | None = None) -> Functions:
    """The functions of a pipeline: the request's ``tools``, run by the profile's handlers
    (``profile``: the session's, ``handlers.current()``, by default) or else by the client.

    Raises ``HandlerLoadError`` naming a handler of the profile that cannot be loaded: every
    one is loaded, advertised or not, so a broken one fails every session alike."""
    profile = profile if profile is not None else handlers.current()
    loaded = handlers.load(profile.specs)
    server = {t.name: loaded[t.name] for t in tools if t.name in loaded}
    on_client = [t for t in tools if t.name not in server]
    client = ClientFunctions(profile.client_timeout_s) if on_client else None
    if tools:
        logger.info(f"functions on the server: {sorted(server) or 'none'}; on the RTVI client: "
                    f"{[t.name for t in on_client] or 'none'} (answer within {profile.client_timeout_s:g}s)")
    return Functions(tools=list(tools), server=server, client=client)

