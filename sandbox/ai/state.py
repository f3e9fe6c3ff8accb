"""What the stand-ins share: the request log and the transcript script, kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sandbox.ai.requests_log import RequestLog
from sandbox.ai.script import TranscriptScript


@dataclass
class StandIns:
    """The state behind one mount of the stand-in AI services."""

    log: RequestLog = field(default_factory=RequestLog)
    script: TranscriptScript = field(default_factory=TranscriptScript)


AI = web.AppKey("ai", StandIns)
