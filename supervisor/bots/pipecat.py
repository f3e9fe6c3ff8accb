"""``pipecat``: the user's own Pipecat bot, hosted in the session's worker.

    [profiles.pipecat_echo]
    kind = "pipecat"
    bot = "examples/pipecat_echo.py:bot"   # a file, or "mypkg.bots:bot"; ":bot" is the default

The worker runs it the way Pipecat Cloud does, ``await bot(runner_args)``
(``worker.bot_runner``): the bot's own ``DailyTransport`` joins the call on the worker's
one client, so the session sees every event as usual. Nothing of the bot runs in the
supervisor: this class only makes its join message ``RunBot`` instead of ``Join``. Whether the module imports is checked when profiles load, in a fresh process
(``supervisor.bot_check``), since the supervisor never imports Pipecat itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from protocol.messages import Join, RunBot
from supervisor.bots.base import Bot, BotConfigError, Hosting, Seat


class PipecatBot(Bot):
    kind: ClassVar[str] = "pipecat"
    hosted: ClassVar[bool] = True

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        spec = config.get("bot")
        if not isinstance(spec, str) or not spec.strip():
            raise BotConfigError("bot", 'expected "path/to/bot.py:function" or "package.module:function"')
        unknown = sorted(set(config) - {"bot"})
        if unknown:
            raise BotConfigError(unknown[0], "unknown key (a pipecat profile takes only bot)")

    @property
    def spec(self) -> str:
        return str(self.config["bot"])

    def join_message(self, seat: Seat, hosting: Callable[[], Hosting]) -> Join | RunBot:
        """``RunBot``: the worker runs the bot, whose own transport joins the call."""
        given = hosting()
        return RunBot(id=seat.id, bot=self.spec, room_url=seat.room_url, token=seat.token,
                      session_id=seat.session_id, body=given.body, api_url=given.api_url, api_key=given.api_key,
                      timeout_s=seat.timeout_s, env=given.env, provider_keys=given.provider_keys)
