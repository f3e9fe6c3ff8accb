"""``pipecat``: the user's own Pipecat bot, hosted in the session's worker.

    [profiles.pipecat_echo]
    kind = "pipecat"
    bot = "examples/pipecat_echo.py:bot"   # a file, or "mypkg.bots:bot"; ":bot" is the default

The worker runs it the way Pipecat Cloud does, ``await bot(runner_args)``
(``worker.bot_runner``): the bot's own ``DailyTransport`` joins the call on the worker's
one client, so the session sees every event as usual. Nothing of the bot runs in the
supervisor: this class only tells the session to start it with ``RunBot`` instead of
``Join``. Whether the module imports is checked when profiles load, in a fresh process
(``supervisor.bot_check``), since the supervisor never imports Pipecat itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from supervisor.bots.base import Bot, BotConfigError


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
