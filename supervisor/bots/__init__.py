"""Bots a session runs in the supervisor: events in, audio in, commands and audio out.

``BOT_KINDS`` maps a profile's ``kind`` to its class.
"""

from supervisor.bots.base import Bot, BotContext
from supervisor.bots.echo import EchoBot
from supervisor.bots.pipecat import PipecatBot
from supervisor.bots.playback import PlaybackBot
from supervisor.bots.recorder import RecorderBot
from supervisor.bots.stream import StreamBot

BOT_KINDS: dict[str, type[Bot]] = {cls.kind: cls for cls in (EchoBot, PlaybackBot, RecorderBot, StreamBot, PipecatBot)}

__all__ = ["BOT_KINDS", "Bot", "BotContext"]
