"""A synthetic caller that is also an RTVI client, as Daily's client SDKs are: it speaks RTVI
(``label: "rtvi-ai"``) over the room's app messages, keeps every RTVI message the bot sends,
notes when each frame of the bot's voice arrives, and answers the bot's function calls it
was given results for (``answers``) the moment they are announced."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from callfleet.audio import rms
from sandbox.caller import Caller, CallerOptions
from sandbox.wire import AudioHead
from tests.waiting import wait_until

LOUD = 500.0  # RMS of a frame that carries the bot's voice (speech and the fake TTS tone are far above; silence is 0)
RTVI = "rtvi-ai"
CLIENT_VERSION = "1.0.0"
RESEND_S = 0.5


class RTVIClient(Caller):
    def __init__(self, opts: CallerOptions) -> None:
        super().__init__(opts)
        self.loud_at: list[float] = []
        self.answers: dict[str, Any] = {}  # function name -> the result this client answers a call with
        self._ids = itertools.count(1)
        self._answering: set[asyncio.Task[str]] = set()

    def _on_event(self, callback: str, args: list[Any]) -> None:
        super()._on_event(callback, args)
        message = args[0] if callback == "on_app_message" and args else None
        if isinstance(message, dict) and message.get("label") == RTVI \
                and message.get("type") == "llm-function-call-in-progress" \
                and message["data"].get("function_name") in self.answers:
            call = message["data"]
            task = asyncio.get_running_loop().create_task(self.answer(call, self.answers[call["function_name"]]))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    def _on_audio(self, head: AudioHead, pcm: bytes) -> None:
        super()._on_audio(head, pcm)
        if rms(pcm) > LOUD:
            self.loud_at.append(time.monotonic())

    # -- the bot's voice -------------------------------------------------------------------------

    def first_loud_after(self, t: float) -> float | None:
        return next((at for at in self.loud_at if at > t), None)

    def loud_between(self, start: float, end: float) -> list[float]:
        return [at for at in self.loud_at if start < at < end]

    def quiet_for(self, seconds: float) -> bool:
        return not self.loud_at or time.monotonic() - self.loud_at[-1] > seconds

    # -- RTVI --------------------------------------------------------------------------------------

    def rtvi(self, kind: str) -> list[dict[str, Any]]:
        """The RTVI messages of type ``kind`` the bot sent, in order."""
        return [m for m, _ in self.app_messages if isinstance(m, dict) and m.get("label") == RTVI
                and m.get("type") == kind]

    def rtvi_types(self) -> list[str]:
        return [str(m.get("type")) for m, _ in self.app_messages if isinstance(m, dict) and m.get("label") == RTVI]

    async def wait_rtvi(self, kind: str, timeout: float = 10, count: int = 1) -> list[dict[str, Any]]:
        """The RTVI messages of type ``kind``, once there are ``count`` of them."""
        await wait_until(lambda: len(self.rtvi(kind)) >= count, timeout, f"RTVI {kind} x{count}")
        return self.rtvi(kind)

    async def send_rtvi(self, kind: str, data: Any = None) -> str:
        """Send an RTVI message to the bot; returns its id."""
        msg_id = f"{kind}-{next(self._ids)}"
        message: dict[str, Any] = {"label": RTVI, "type": kind, "id": msg_id}
        if data is not None:
            message["data"] = data
        await self.conn.request("app_message", message=message, recipient=None)
        return msg_id

    async def answer(self, call: dict[str, Any], result: Any) -> str:
        """Answer an ``llm-function-call-in-progress`` (its ``data``) with ``result``."""
        return await self.send_rtvi("llm-function-call-result", {
            "function_name": call["function_name"], "tool_call_id": call["tool_call_id"],
            "arguments": call.get("arguments") or {}, "result": result})

    async def client_ready(self, timeout: float = 20) -> str:
        """Send ``client-ready`` once the bot is in the room, again every ``RESEND_S`` until a
        ``bot-ready`` answers; returns the id it answered. Daily's RTVI clients wait for the
        bot's audio track to start, which a bot's pipeline does only once it hears app
        messages; the sandbox marks the bot's track playable the moment it joins, a little
        before, and an app message sent then reaches no one."""
        await wait_until(lambda: any(e == "on_participant_joined" for e, _ in self.events), timeout, "the bot to join")
        deadline = time.monotonic() + timeout
        sent: set[str] = set()
        while not (answered := [m["id"] for m in self.rtvi("bot-ready") if m.get("id") in sent]):
            assert time.monotonic() < deadline, "no bot-ready answered client-ready"
            sent.add(await self.send_rtvi("client-ready", {"version": CLIENT_VERSION,
                                                           "about": {"library": "callfleet-test"}}))
            await asyncio.sleep(RESEND_S)
        return str(answered[0])

    async def say(self, text: str) -> None:
        """Declare a final transcript of what this caller says (the room's transcription hears it)."""
        await self.conn.request("say", text=text, is_final=True)
