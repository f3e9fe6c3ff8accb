"""Where a phone declares what it is about to say, so that the sandbox's stand-in
speech-to-text (``sandbox.ai``) transcribes its next utterance as that text."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from sandbox.ai.script import TranscriptScript


class Transcripts(Protocol):
    async def declare(self, text: str) -> None:
        """The next utterance heard is ``text``."""
        ...


class LocalTranscripts:
    """The transcript script of a sandbox in this process (``Sandbox.ai.script``)."""

    def __init__(self, script: TranscriptScript) -> None:
        self.script = script

    async def declare(self, text: str) -> None:
        self.script.push(text)


class RemoteTranscripts:
    """The transcript script of the sandbox at ``sandbox_url``, over its HTTP API."""

    def __init__(self, sandbox_url: str) -> None:
        self.url = sandbox_url.rstrip("/") + "/ai/script"

    async def declare(self, text: str) -> None:
        """Raises ``aiohttp.ClientError`` if the sandbox cannot be reached or refuses."""
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url, json={"transcripts": [text], "append": True}) as resp:
                resp.raise_for_status()
