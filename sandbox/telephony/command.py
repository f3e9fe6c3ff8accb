"""``callfleet phone``: place one call to a voice webhook as Twilio would, and say what happened.

Works against anything that answers Twilio's webhook with ``<Connect><Stream>``: a callfleet
supervisor (``POST /telephony/twilio``), Pipecat's development runner (``POST /`` with
``--plain-ws`` when it runs without TLS), or a server of one's own. ``--sandbox URL`` puts
the call on that sandbox's network, so that Twilio's REST API there can hang it up, and
declares ``--say``'s text to its stand-in speech-to-text.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import msgspec

from callfleet.audio import WavError, write_wav
from sandbox.ai.synthesis import SynthesisError
from sandbox.telephony import mulaw, voice
from sandbox.telephony.lines import LineError, RemoteCarrier
from sandbox.telephony.network import ACCOUNT_SID
from sandbox.telephony.phone import CallReport, HungUpBy, Phone, PhoneOptions
from sandbox.telephony.transcripts import RemoteTranscripts

TONE_S = 1.0  # how long --tone sounds


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="callfleet phone", description="Place a phone call to a Twilio voice webhook.")
    p.add_argument("webhook_url", help="the voice webhook, e.g. http://127.0.0.1:7940/telephony/twilio")
    p.add_argument("--from", dest="from_number", default="+15550100", help="the caller's number")
    p.add_argument("--to", dest="to_number", default="+15550199", help="the number called")
    p.add_argument("--account-sid", default=ACCOUNT_SID, help="the AccountSid the webhook carries")
    speech = p.add_mutually_exclusive_group()
    speech.add_argument("--wav", type=Path, default=None, help="say this 16-bit WAV (resampled to 8 kHz μ-law)")
    speech.add_argument("--tone", type=float, default=None, metavar="HZ", help=f"sound a tone for {TONE_S:g} s")
    speech.add_argument("--say", default=None, metavar="TEXT", help="say TEXT (espeak-ng) and declare it to --sandbox")
    p.add_argument("--speak-at", type=float, default=1.0, metavar="S", help="start speaking S seconds into the stream")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S", help="hang up after S seconds of stream")
    p.add_argument("--record", type=Path, default=None, metavar="OUT.wav", help="write what the phone heard (8 kHz)")
    p.add_argument("--auth-token-env", default=None, metavar="NAME",
                   help="name of an env var holding the account's auth token: the webhook is then signed")
    p.add_argument("--sandbox", default=None, metavar="URL",
                   help="a sandbox's base URL: the call goes on its network (its REST API can hang it up)")
    p.add_argument("--plain-ws", action="store_true", help="reach a wss:// Stream url as ws:// (no TLS)")
    p.add_argument("--json", action="store_true", help="print the call's report as JSON")
    return p.parse_args(argv)


async def speech(ns: argparse.Namespace) -> bytes:
    """What the phone is to say, as 8 kHz μ-law (nothing: it listens).

    Raises ``OSError``/``WavError`` for an unreadable WAV, ``SynthesisError`` if espeak-ng fails."""
    if ns.wav is not None:
        return voice.from_wav(ns.wav)
    if ns.tone is not None:
        return voice.from_tone(ns.tone, TONE_S)
    if ns.say:
        return await voice.from_text(ns.say)
    return b""


async def place(ns: argparse.Namespace, auth_token: str) -> Phone:
    """Dial, speak at ``--speak-at``, hang up after ``--seconds`` unless the other side does first."""
    said = await speech(ns)
    options = PhoneOptions(ns.webhook_url, from_number=ns.from_number, to_number=ns.to_number,
                           account_sid=ns.account_sid, auth_token=auth_token, plain_ws=ns.plain_ws)
    if ns.sandbox:
        options.carrier = RemoteCarrier(ns.sandbox)
        options.transcripts = RemoteTranscripts(ns.sandbox)
    phone = Phone(options)
    await phone.dial()
    if phone.connected:
        async def talk() -> None:
            await asyncio.sleep(ns.speak_at)
            try:
                await phone.say(said, text=ns.say)
            except aiohttp.ClientError as exc:
                print(f"callfleet phone: --say was not declared to the sandbox ({exc}); saying it anyway",
                      file=sys.stderr)
                await phone.say(said)

        talker = asyncio.create_task(talk())
        try:
            await asyncio.wait_for(phone.ended(), ns.seconds)
        except TimeoutError:
            await phone.hang_up()
        finally:
            talker.cancel()
    await phone.ended()
    return phone


WHO = {HungUpBy.PHONE: "the phone", HungUpBy.API: "the server, through the REST API",
       HungUpBy.SERVER: "the server", HungUpBy.REJECTED: "the server (rejected)", HungUpBy.FAILED: "nobody: it failed"}


def describe(r: CallReport) -> list[str]:
    """The report in a few lines, for a person."""
    lines = [f"call {r.call_sid}: webhook answered {r.webhook_status if r.webhook_status is not None else 'nothing'}"
             + (f", TwiML {' '.join(r.verbs) or '(empty)'}" if r.verbs else "")]
    lines += [f"  <Say> {text}" for text in r.said]
    if r.skipped:
        lines.append(f"  skipped {', '.join(r.skipped)}")
    if r.stream_opened:
        lines.append(f"  stream {r.stream_url} opened ({r.stream_sid}), parameters {r.parameters}")
        lines.append(f"  sent {r.seconds_sent:.2f} s ({r.seconds_spoken:.2f} s speech), heard {r.seconds_heard:.2f} s"
                     f" ({r.seconds_cleared:.2f} s cleared, {r.clears} clears, {r.marks_echoed} marks echoed)")
    by = WHO[r.hung_up_by] if r.hung_up_by is not None else "nobody"
    lines.append(f"  hung up by {by}: {r.reason}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    auth_token = ""
    if ns.auth_token_env:
        auth_token = os.environ.get(ns.auth_token_env, "")
        if not auth_token:
            print(f"callfleet phone: --auth-token-env: ${ns.auth_token_env} is not set", file=sys.stderr)
            return 2
    try:
        phone = asyncio.run(place(ns, auth_token))
    except LineError as exc:
        print(f"callfleet phone: no line to the sandbox: {exc}", file=sys.stderr)
        return 1
    except (OSError, WavError, SynthesisError) as exc:
        print(f"callfleet phone: {exc}", file=sys.stderr)
        return 1
    if ns.record is not None:
        write_wav(ns.record, phone.heard_pcm(), mulaw.RATE)
    report = phone.report
    if ns.json:
        print(msgspec.json.encode(report).decode())
    else:
        print("\n".join(describe(report)))
    return 1 if report.hung_up_by is HungUpBy.FAILED else 0
