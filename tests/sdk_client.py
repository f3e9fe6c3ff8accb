"""A test-side wrapper around ``sandbox.client.CallClient`` that records what arrives on
the SDK thread and lets a test await completions from its own loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import sandbox.client as sc
from sandbox.sdk import loop

_init_lock = threading.Lock()


def ensure_sdk() -> None:
    with _init_lock:
        if loop.current() is None:
            sc.Daily.init()


class Recorder(sc.EventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, tuple[Any, ...], str]] = []
        self.lock = threading.Lock()

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            def record(*args: Any) -> None:
                with self.lock:
                    self.events.append((name, args, threading.current_thread().name))
            return record
        return super().__getattribute__(name)

    def names(self) -> list[str]:
        with self.lock:
            return [e[0] for e in self.events]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self.lock:
            return [e[1] for e in self.events if e[0] == name]


class SdkTestClient:
    def __init__(self, rate: int = 16000) -> None:
        ensure_sdk()
        self.handler = Recorder()
        self.client = sc.CallClient(event_handler=self.handler)
        self.source = sc.CustomAudioSource(rate, 1)
        self.track = sc.CustomAudioTrack(self.source)
        self.heard: dict[str, list[bytes]] = {}
        self.heard_threads: set[str] = set()
        self.id = ""

    async def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a CallClient method with a completion and await the completion's args."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()
        thread: list[str] = []

        def completion(*cargs: Any) -> None:
            thread.append(threading.current_thread().name)
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(cargs))

        getattr(self.client, method)(*args, completion=completion, **kwargs)
        result = await asyncio.wait_for(fut, 10)
        assert thread == ["sandbox-sdk"], "completions must arrive on the SDK thread"
        return result

    async def join(self, url: str, token: str | None = None) -> dict[str, Any]:
        settings = {"inputs": {"camera": False, "microphone": {"isEnabled": True, "settings": {"customTrack": {"id": self.track.id}}}}}
        data, error = await self.call("join", url, token, settings)
        assert error is None, error
        self.id = data["participants"]["local"]["id"]
        return data

    def render(self, participant_id: str, rate: int = 16000, interval_ms: int = 20) -> None:
        def on_audio(pid: str, audio: Any, source: str) -> None:
            self.heard_threads.add(threading.current_thread().name)
            self.heard.setdefault(pid, []).append(audio.audio_frames)
        self.client.set_audio_renderer(participant_id, on_audio, sample_rate=rate, callback_interval_ms=interval_ms)

    async def write(self, pcm: bytes) -> None:
        await asyncio.to_thread(self.source.write_frames, pcm)

    async def leave(self) -> None:
        (error,) = await self.call("leave")
        assert error is None
        self.client.release()

