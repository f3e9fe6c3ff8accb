"""Synthetic callers: human stand-ins that join a room, speak, listen and measure.

A caller speaks a tone or a WAV in paced 20 ms frames, each stamped with a marker (its
sequence number in the first samples) so that when something echoes it back the caller
knows the exact round trip of that frame -- measured, not guessed. It records what it
hears, can declare the text it is "saying" (for transcription), send app messages, and
in ``echo`` mode plays back whatever it hears (the bench's orchestrator-free baseline).

Many callers share one asyncio loop (``run_callers``): the bench and the end-to-end tests
start dozens of them in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callfleet.audio import read_marker, read_wav, resample, stamp_marker, tone, write_wav
from sandbox.connection import JoinError, RequestError, RoomConnection
from sandbox.wire import AudioHead

FRAME_MS = 20
PROBE_SEQ = 1 << 30  # probe frames are numbered from here, apart from measured ones


@dataclass
class CallerOptions:
    room_url: str
    token: str | None = None
    tone_hz: float | None = 440.0
    wav: Path | None = None
    say: str | None = None
    # How long ``say`` waits for the room's transcription to run (a bot starts it a moment
    # after it joins, which may be after this caller): said before that, it is heard by nobody.
    say_timeout_s: float = 15.0
    seconds: float = 5.0
    record: Path | None = None
    sample_rate: int = 16000
    user_name: str = "caller"
    echo: bool = False  # play back whatever is heard instead of speaking
    markers: bool = True
    # Before the measured speech, send probe frames until one is echoed: audio sent before
    # the far side has subscribed is (rightly) never heard, and must not count as lost.
    await_echo: bool = False
    await_echo_timeout_s: float = 10.0
    # Wait this long before the first frame. Independent humans do not speak in lockstep:
    # the bench gives each caller a random phase within one frame period.
    start_offset_s: float = 0.0
    app_messages: list[Any] = field(default_factory=list)


class Caller:
    def __init__(self, opts: CallerOptions) -> None:
        self.opts = opts
        self.conn = RoomConnection(self._on_event, self._on_audio)
        self.sent_at: dict[int, float] = {}
        self.rtts_ms: list[float] = []
        self.echo_times: list[float] = []  # monotonic arrival time of each echo
        self.frames_sent = 0
        self.frames_heard = 0
        self.echoes = 0
        self.heard: list[bytes] = []
        self.events: list[tuple[str, list[Any]]] = []
        self.app_messages: list[tuple[Any, Any]] = []
        self.left_reason: str | None = None
        self.participant_id: str | None = None
        self.joined_at = 0.0
        self.probe_echoed = asyncio.Event()
        self.said: bool | None = None  # whether ``say`` was transcribed (None: nothing to say)

    # -- callbacks ---------------------------------------------------------------------------

    def _on_event(self, callback: str, args: list[Any]) -> None:
        self.events.append((callback, args))
        if callback == "on_app_message":
            self.app_messages.append((args[0], args[1] if len(args) > 1 else None))
        elif callback == "_left":
            self.left_reason = str(args[0]) if args else "left"

    def _on_audio(self, head: AudioHead, pcm: bytes) -> None:
        now = time.monotonic()
        self.frames_heard += 1
        if self.opts.record is not None:
            self.heard.append(resample(pcm, head.sample_rate, self.opts.sample_rate, head.channels))
        if self.opts.echo:
            self.conn.send_audio(pcm, head.sample_rate, head.channels)
            return
        seq = read_marker(pcm)
        if seq is not None and seq >= PROBE_SEQ:
            self.probe_echoed.set()
        elif seq is not None:
            sent = self.sent_at.pop(seq, None)
            if sent is not None:
                self.echoes += 1
                self.rtts_ms.append((now - sent) * 1000)
                self.echo_times.append(now)

    # -- life --------------------------------------------------------------------------------

    async def join(self) -> None:
        await self.conn.join(self.opts.room_url, self.opts.token, user_name=self.opts.user_name,
                             render_all=self.opts.sample_rate)
        self.participant_id = self.conn.participant_id
        self.joined_at = time.monotonic()

    def _speech(self) -> bytes:
        rate = self.opts.sample_rate
        if self.opts.wav is not None:
            pcm, wav_rate, channels = read_wav(self.opts.wav)
            if channels != 1:
                raise ValueError(f"{self.opts.wav}: only mono WAV files can be spoken")
            return resample(pcm, wav_rate, rate)
        return tone(self.opts.tone_hz or 440.0, self.opts.seconds, rate)

    async def declare(self, text: str) -> bool:
        """Declare the text this caller is saying once the room transcribes it (waiting up to
        ``say_timeout_s`` for its transcription to start); whether it was transcribed."""
        deadline = time.monotonic() + self.opts.say_timeout_s
        while True:
            try:
                reply = await self.conn.request("say", text=text, is_final=True)
            except RequestError:
                return False
            if not isinstance(reply, dict) or reply.get("heard", True):
                return True
            if time.monotonic() > deadline or self.conn.closed:
                return False
            await asyncio.sleep(0.1)

    async def speak(self) -> None:
        """Speak for ``seconds`` (or the WAV's length), paced in real time."""
        if self.opts.say:
            self.said = await self.declare(self.opts.say)
        for message in self.opts.app_messages:
            await self.conn.request("app_message", message=message, recipient=None)
        if self.opts.echo:
            await asyncio.sleep(self.opts.seconds)
            return
        rate = self.opts.sample_rate
        frame = rate * FRAME_MS // 1000 * 2
        speech = self._speech()  # made before the clock starts: it takes milliseconds
        frames = max(1, len(speech) // frame) if self.opts.wav else int(self.opts.seconds * 1000 / FRAME_MS)
        if self.opts.await_echo:
            await self.wait_for_echo()
        if self.opts.start_offset_s > 0:
            await asyncio.sleep(self.opts.start_offset_s)
        started = time.monotonic()
        for seq in range(frames):
            at = (seq * frame) % max(len(speech), frame)
            pcm = speech[at : at + frame].ljust(frame, b"\0")
            if self.opts.markers:
                pcm = stamp_marker(pcm, seq)
                self.sent_at[seq] = time.monotonic()
            if self.conn.send_audio(pcm, rate, 1):
                self.frames_sent += 1
            if self.conn.closed:
                break
            delay = started + (seq + 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def wait_for_echo(self) -> None:
        """Send probe frames until one comes back; raises TimeoutError if none does."""
        rate = self.opts.sample_rate
        frame = bytes(rate * FRAME_MS // 1000 * 2)
        deadline = time.monotonic() + self.opts.await_echo_timeout_s
        probe = PROBE_SEQ
        while not self.probe_echoed.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo within {self.opts.await_echo_timeout_s:g}s")
            self.conn.send_audio(stamp_marker(frame, probe), rate, 1)
            probe += 1
            try:
                await asyncio.wait_for(self.probe_echoed.wait(), FRAME_MS / 1000)
            except TimeoutError:
                pass
        await asyncio.sleep(0.1)  # let the last probes' echoes drain before measuring

    async def leave(self, linger_s: float = 0.3) -> None:
        await asyncio.sleep(linger_s)  # let the last echoes arrive
        await self.conn.leave()
        if self.opts.record is not None:
            write_wav(self.opts.record, b"".join(self.heard), self.opts.sample_rate)

    def bot_said(self) -> list[str]:
        """What a Daily Bots pipeline in the room said, as its RTVI messages report each
        spoken sentence (``bot-tts-text``)."""
        return [str(m["data"].get("text", "")) for m, _ in self.app_messages
                if isinstance(m, dict) and m.get("label") == "rtvi-ai" and m.get("type") == "bot-tts-text"
                and isinstance(m.get("data"), dict)]

    def summary(self) -> dict[str, Any]:
        rtts = sorted(self.rtts_ms)
        return {
            "participant_id": self.participant_id,
            "frames_sent": self.frames_sent,
            "frames_heard": self.frames_heard,
            "echoes": self.echoes,
            "lost_echoes": max(0, self.frames_sent - self.echoes) if self.echoes else None,
            "rtt_ms": {
                "p50": round(percentile(rtts, 50), 3),
                "p99": round(percentile(rtts, 99), 3),
                "mean": round(statistics.fmean(rtts), 3),
            } if rtts else None,
            "app_messages": [m for m, _ in self.app_messages],
            "said": self.said,
            "bot_said": self.bot_said(),
            "left_reason": self.left_reason,
            "recorded": str(self.opts.record) if self.opts.record else None,
        }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def run_callers(options: list[CallerOptions]) -> list[Caller]:
    """Join, speak and leave with every caller at once, on this loop."""
    callers = [Caller(o) for o in options]
    await asyncio.gather(*(c.join() for c in callers))
    await asyncio.gather(*(c.speak() for c in callers))
    await asyncio.gather(*(c.leave() for c in callers))
    return callers


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="callfleet caller", description="Join a room as a synthetic human caller.")
    p.add_argument("room_url")
    p.add_argument("--token", default=None)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--wav", type=Path, default=None, help="mono 16-bit WAV to speak")
    src.add_argument("--tone", type=float, default=None, help="speak a sine tone of this frequency")
    p.add_argument("--say", default=None, help="transcript text this caller declares it is saying")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--record", type=Path, default=None, help="write what the caller hears to this WAV")
    p.add_argument("--app-message", action="append", default=[], help="JSON app message to send after joining")
    p.add_argument("--echo", action="store_true", help="play back what is heard instead of speaking")
    p.add_argument("--count", type=int, default=1, help="this many callers in the room at once")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    try:
        messages = [json.loads(m) for m in ns.app_message]
    except json.JSONDecodeError as exc:
        print(f"callfleet caller: --app-message is not JSON: {exc}", file=sys.stderr)
        return 2
    options = [
        CallerOptions(
            room_url=ns.room_url, token=ns.token, tone_hz=ns.tone or (None if ns.wav else 440.0),
            wav=ns.wav, say=ns.say, seconds=ns.seconds, echo=ns.echo, app_messages=messages,
            record=(ns.record if i == 0 else None), user_name=f"caller-{i + 1}",
        )
        for i in range(ns.count)
    ]
    try:
        callers = asyncio.run(run_callers(options))
    except JoinError as exc:
        print(f"callfleet caller: could not join: {exc}", file=sys.stderr)
        return 1
    summaries = [c.summary() for c in callers]
    if ns.json:
        print(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        for s in summaries:
            rtt = s["rtt_ms"]
            echo = f", echo rtt p50 {rtt['p50']} ms p99 {rtt['p99']} ms" if rtt else ", no echo heard"
            print(f"{s['participant_id']}: sent {s['frames_sent']} frames, heard {s['frames_heard']}{echo}")
            if s["said"] is False:
                print(f"  --say was not transcribed: nothing in the room ran transcription within "
                      f"{options[0].say_timeout_s:g}s")
            for text in s["bot_said"]:
                print(f"  bot said: {text}")
    return 0
