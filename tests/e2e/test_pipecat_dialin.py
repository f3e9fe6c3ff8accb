"""A phone call to a hosted Pipecat bot, end to end: ``POST /v1/sandbox/dialin`` makes the
sandbox post Daily's dial-in webhook to the supervisor's ``/dialin``; the ``[dialin]``
profile's Pipecat bot gets a ``DailyDialinRequest`` body; the waiting call is forwarded
to the room with exactly one ``pinlessCallUpdate``, whether the bot asks for it itself
(``examples/pipecat_dialin.py``: its ``DailyTransport`` has ``dialin_settings``) or leaves
it to the supervisor (``tests/bots/recording.py:bot_plain``).

The sandbox keeps no count of ``pinlessCallUpdate`` requests, and a second one for a
connected call only answers 400, so the supervisor's Daily REST goes through
``RestWitness``, a pass-through proxy that counts them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DailyRest, SandboxProcess, dropped
from tests.doubles.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

RECORD_ENV = "CALLFLEET_TEST_BOT_RECORD"


@dataclass
class Dialin:
    sup: SupervisorProcess
    witness: RestWitness
    sandbox: SandboxProcess
    rest: DailyRest
    record: Path

    async def ring(self, caller: str = "+15550100", callee: str = "+15550199") -> dict[str, Any]:
        """A phone call arrives at Daily: the sandbox posts the webhook to ``/dialin``."""
        return dict(await self.rest.ok("POST", "/sandbox/dialin", json={
            "webhook_url": f"{self.sup.url}/dialin", "From": caller, "To": callee}))

    async def session_for(self, profile: str, timeout: float = 15) -> dict[str, Any]:
        """The one session the call started (each test's supervisor takes one call)."""
        async def found() -> list[dict[str, Any]]:
            _, listing, _ = await self.sup.http("GET", "/sessions")
            return [s for s in listing["data"] if s["profile"] == profile and s["room_url"]]

        sessions = await wait_until(found, timeout, f"a {profile} session to take the call", interval=0.1)
        assert len(sessions) == 1, sessions
        return dict(sessions[0])

    async def phone_in(self, room: str, timeout: float = 15) -> dict[str, Any]:
        """The room's phone participant once it has heard its own voice come back."""
        async def phone() -> dict[str, Any] | None:
            people = (await self.rest.ok("GET", f"/sandbox/rooms/{room}/participants"))["data"]
            return next((p for p in people if p["kind"] == "dialin"), None)

        heard = await wait_until(phone, timeout, f"a phone that hears the bot in {room}",
                                 until=lambda p: p is not None and p["loud_frames_heard"] > 20, interval=0.1)
        return dict(heard)

    def records(self, session_id: str, event: str) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]
        return [r for r in found if r.get("session_id") == session_id and r["event"] == event]


def profiles(dialin_profile: str) -> str:
    return f"""
[profiles.pipecat_dialin]
kind = "pipecat"
bot = "examples/pipecat_dialin.py:bot"

[profiles.plain]
kind = "pipecat"
bot = "tests/bots/recording.py:bot_plain"
secrets = ["CALLFLEET_TEST_BOT_RECORD"]

[dialin]
profile = "{dialin_profile}"
"""


async def dialin_fleet(tmp_path: Path, sandbox: SandboxProcess, rest: DailyRest, dialin_profile: str,
                       drop_dir: Path) -> AsyncIterator[Dialin]:
    witness = RestWitness(sandbox.base_url)
    await witness.start()
    path = tmp_path / "profiles.toml"
    path.write_text(profiles(dialin_profile))
    record = dropped(drop_dir, "bots.jsonl")
    sup = SupervisorProcess(tmp_path, sandbox.port, supervisor={"profiles": str(path)},
                            daily={"api_url": witness.api_url})
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(RECORD_ENV, str(record))
            await asyncio.to_thread(sup.start)
        yield Dialin(sup, witness, sandbox, rest, record)
    finally:
        await asyncio.to_thread(sup.stop)  # the witness, on this loop, carries its room deletes
        await witness.close()


@pytest.fixture
async def bot_dials(tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest,
                    drop_dir: Path) -> AsyncIterator[Dialin]:
    """``[dialin] profile`` is ``examples/pipecat_dialin.py``, a bot that forwards the call itself."""
    async for fleet in dialin_fleet(tmp_path, sandbox_proc, sandbox_rest, "pipecat_dialin", drop_dir):
        yield fleet


@pytest.fixture
async def supervisor_dials(tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest,
                           drop_dir: Path) -> AsyncIterator[Dialin]:
    """``[dialin] profile`` is a Pipecat bot without ``dialin_settings``."""
    async for fleet in dialin_fleet(tmp_path, sandbox_proc, sandbox_rest, "plain", drop_dir):
        yield fleet


async def hang_up_and_end(fleet: Dialin, session_id: str, room: str, phone: dict[str, Any]) -> dict[str, Any]:
    await fleet.rest.ok("POST", "/sandbox/hangup", json={"room": room, "participant_id": phone["id"]})
    return await fleet.sup.wait_session(session_id, lambda d: d["state"] in ("ended", "failed"))


async def test_a_dialin_bot_that_forwards_the_call_itself_connects_it_with_one_pinless_call_update(
    bot_dials: Dialin,
) -> None:
    call = await bot_dials.ring(caller="+15550100")
    session = await bot_dials.session_for("pipecat_dialin")
    room = session["room_url"].rsplit("/", 1)[1]
    phone = await bot_dials.phone_in(room)  # the phone joined and hears the bot's echo of its voice
    assert phone["number"] == "+15550100"
    (sent, status), *_ = bot_dials.witness.pinless_calls  # the phone is in: the call was forwarded
    assert status == 200 and sent["callId"] == call["callId"] and sent["callDomain"] == call["callDomain"]
    log = bot_dials.sup.log_path.read_text()
    assert "Incoming call from +15550100 to +15550199" in log  # the bot parsed its DailyDialinRequest body
    # The bot's own pinlessCallUpdate went to /daily/v1 and was answered 200 (the one call's
    # answer, whoever asked first): Pipecat logs "Unable to handle dialin-ready event" otherwise.
    assert "dialin-ready event" not in log and "unhandled error" not in log, log[-3000:]
    done = await hang_up_and_end(bot_dials, session["session_id"], room, phone)
    assert done["end_reason"] == "participant_left"
    # Over the whole call, no second forward from the bot or the supervisor.
    assert len(bot_dials.witness.pinless_calls) == 1, bot_dials.witness.pinless_calls


async def test_a_dialin_bot_without_dialin_settings_gets_the_call_forwarded_by_the_supervisor_once(
    supervisor_dials: Dialin,
) -> None:
    call = await supervisor_dials.ring(caller="+15550111", callee="+15550122")
    session = await supervisor_dials.session_for("plain")
    sid = session["session_id"]
    room = session["room_url"].rsplit("/", 1)[1]
    phone = await supervisor_dials.phone_in(room)
    assert phone["number"] == "+15550111"
    assert supervisor_dials.witness.pinless_calls[0][1] == 200  # the phone is in: the call was forwarded
    # What the bot got: Pipecat's DailyDialinRequest, with the session's proxy key.
    [start] = supervisor_dials.records(sid, "start")
    from pipecat.runner.types import DailyDialinRequest

    request = DailyDialinRequest.model_validate(start["body"])
    settings = request.dialin_settings
    assert (settings.call_id, settings.call_domain) == (call["callId"], call["callDomain"])
    assert (settings.From, settings.To) == ("+15550111", "+15550122")
    assert request.daily_api_url == f"{supervisor_dials.sup.url}/daily/v1"
    assert request.daily_api_key  # the session's key for the proxy: it reaches its own room
    status, room_info, _ = await supervisor_dials.sup.http(
        "GET", f"/daily/v1/rooms/{room}", headers={"Authorization": f"Bearer {request.daily_api_key}"})
    assert status == 200 and room_info["name"] == room
    # A bot asking to forward the call after the supervisor did gets the one call's answer.
    status, forwarded, _ = await supervisor_dials.sup.http(
        "POST", "/daily/v1/dialin/pinlessCallUpdate", headers={"Authorization": f"Bearer {request.daily_api_key}"},
        json={"callId": call["callId"], "callDomain": call["callDomain"], "sipUri": "sip:anything@example.invalid"})
    assert status == 200 and forwarded["callId"] == call["callId"], (status, forwarded)
    assert len(supervisor_dials.witness.pinless_calls) == 1, supervisor_dials.witness.pinless_calls
    done = await hang_up_and_end(supervisor_dials, sid, room, phone)
    assert done["end_reason"] == "participant_left"
    # Over the whole call, Daily was asked to forward it once (the bot's ask got that answer).
    assert len(supervisor_dials.witness.pinless_calls) == 1, supervisor_dials.witness.pinless_calls
