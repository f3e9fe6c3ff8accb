"""``pipecat``: the user's own Pipecat bot, hosted in the session's worker.

    [profiles.pipecat_echo]
    kind = "pipecat"
    bot = "examples/pipecat_echo.py:bot"   # a file, or "mypkg.bots:bot"; ":bot" is the default

A profile running one of callfleet's built-in Daily Bots pipelines (``worker.daily_bots.…``)
may also name server-side handlers for the functions a request's ``tools`` declare, and how
long a call of a function the RTVI client runs waits for its answer
(``worker.daily_bots.handlers``)::

    [profiles.my_voice]
    kind = "pipecat"
    bot = "worker.daily_bots.voice:bot"
    functions = {get_weather = "mypkg.tools:get_weather"}
    client_function_timeout_s = 10

The worker runs it the way Pipecat Cloud does, ``await bot(runner_args)``
(``worker.bot_runner``): the bot's own ``DailyTransport`` joins the call on the worker's
one client, so the session sees every event as usual. Nothing of the bot runs in the
supervisor: this class only makes its join message ``RunBot`` instead of ``Join``. Whether the module imports is checked when profiles load, in a fresh process
(``supervisor.bot_check``), since the supervisor never imports Pipecat itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar

from protocol.messages import Join, RunBot
from supervisor.bots.base import Bot, BotConfigError, Hosting, Seat
from supervisor.bots.services import PIPELINE_BOT_PREFIX

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what the LLMs' APIs accept
PIPELINE_KEYS = frozenset({"functions", "client_function_timeout_s"})  # built-in pipelines only


class PipecatBot(Bot):
    kind: ClassVar[str] = "pipecat"
    hosted: ClassVar[bool] = True

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        spec = config.get("bot")
        if not isinstance(spec, str) or not spec.strip():
            raise BotConfigError("bot", 'expected "path/to/bot.py:function" or "package.module:function"')
        pipeline = spec.startswith(PIPELINE_BOT_PREFIX)
        unknown = sorted(set(config) - {"bot"} - (PIPELINE_KEYS if pipeline else set()))
        if unknown:
            what = "bot, functions and client_function_timeout_s" if pipeline else \
                "only bot (functions: only with a built-in Daily Bots bot, worker.daily_bots.…)"
            raise BotConfigError(unknown[0], f"unknown key (a pipecat profile takes {what})")
        functions = config.get("functions", {})
        if not isinstance(functions, dict):
            raise BotConfigError("functions", 'expected a table of function name = "package.module:function"')
        for name, target in functions.items():
            if not FUNCTION_NAME.match(name):
                raise BotConfigError(f"functions.{name}", "a function name is 1 to 64 letters, digits, '_' or '-'")
            module, _, function = target.rpartition(":") if isinstance(target, str) else ("", "", "")
            if not module.strip() or not function.strip():
                raise BotConfigError(f"functions.{name}", 'expected "package.module:function" or "path/to/file.py:function"')
        timeout = config.get("client_function_timeout_s")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= 600):
            raise BotConfigError("client_function_timeout_s", "expected seconds, more than 0 and at most 600")

    @property
    def spec(self) -> str:
        return str(self.config["bot"])

    def join_message(self, seat: Seat, hosting: Callable[[], Hosting]) -> Join | RunBot:
        """``RunBot``: the worker runs the bot, whose own transport joins the call."""
        given = hosting()
        return RunBot(id=seat.id, bot=self.spec, room_url=seat.room_url, token=seat.token,
                      session_id=seat.session_id, body=given.body, api_url=given.api_url, api_key=given.api_key,
                      timeout_s=seat.timeout_s, env=given.env, provider_keys=given.provider_keys,
                      functions=dict(self.config.get("functions", {})),
                      client_function_timeout_s=self.config.get("client_function_timeout_s"),
                      websocket=seat.websocket, otlp_endpoint=given.otlp_endpoint,
                      otlp_service_name=given.otlp_service_name, webrtc=seat.webrtc)
