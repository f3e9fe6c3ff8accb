"""Bots a session runs in the supervisor: events in, audio in, commands and audio out.

``BOT_KINDS`` maps a profile's ``kind`` to its class.
"""

from supervisor.bots.base import Bot, BotContext
from supervisor.bots.echo import EchoBot

BOT_KINDS: dict[str, type[Bot]] = {EchoBot.kind: EchoBot}

__all__ = ["BOT_KINDS", "Bot", "BotContext", "EchoBot"]
