"""End to end: no session is ejected before its ``max_duration``.

Real supervisor, real workers, real sandbox. Every room and every meeting token a session
uses -- a pooled room, a room made for the session, the bot's fresh token after a
failover -- expires no sooner than the session may end (``joined_at + max_duration``), as
the sandbox itself reports them (``GET /v1/rooms/NAME`` -> ``config.exp``, ``GET
/v1/meeting-tokens/TOKEN`` -> ``exp``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

from supervisor.daily_rest import get_name_from_url
from tests.conftest import DailyRest, SandboxProcess
from tests.doubles.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

LONGEST_S = 14400  # the longest max_duration the API accepts
ROOM_EXP_S = 10800  # 3 h, as both shipped configs have it: shorter than LONGEST_S

ONE_SANDBOX = True  # conftest's sandbox_proc: each test reads only the rooms and tokens of its own sessions, or rooms it names itself


def supervisor(tmp_path: Path, sandbox: SandboxProcess, **overrides: Any) -> SupervisorProcess:
    sup = SupervisorProcess(tmp_path, sandbox.port, **overrides)
    sup.start()
    return sup


async def room_exp(rest: DailyRest, room_url: str) -> float:
    room = await rest.ok("GET", f"/rooms/{get_name_from_url(room_url)}")
    return float(room["config"]["exp"])


async def token_props(rest: DailyRest, token: str) -> dict[str, Any]:
    return dict(await rest.ok("GET", f"/meeting-tokens/{token}"))


async def test_a_session_longer_than_the_pooled_rooms_gets_a_room_and_token_that_outlive_it(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc, daily={"room_pool": 2, "room_exp_s": ROOM_EXP_S})
    try:
        def pool_status() -> Any:
            return json.loads(sup.ctl("--json", "status").stdout)["room_pool"]

        await wait_until(pool_status, until=lambda p: p["ready"] == 2, what="two pooled rooms")
        long = await sup.start_bot("echo", max_duration=LONGEST_S)
        joined = await sup.wait_session(long["session_id"], lambda d: d["state"] == "joined")
        must_live_until = joined["joined_at"] + LONGEST_S
        assert await room_exp(sandbox_rest, long["room_url"]) >= must_live_until, "the room expires mid-session"
        user_token = await token_props(sandbox_rest, long["token"])
        assert user_token["exp"] >= must_live_until, "the user's token expires mid-session"
        assert pool_status()["too_short"] == 1  # the pooled rooms (3 h) could not serve it

        short = await sup.start_bot("echo", max_duration=600)
        assert "-pool-" in short["room_url"]  # a short session still takes a ready room
        joined = await sup.wait_session(short["session_id"], lambda d: d["state"] == "joined")
        assert await room_exp(sandbox_rest, short["room_url"]) >= joined["joined_at"] + 600
        assert (await token_props(sandbox_rest, short["token"]))["exp"] >= joined["joined_at"] + 600
    finally:
        sup.stop()


async def test_a_room_made_for_the_session_and_its_token_outlive_the_session(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc, daily={"room_exp_s": ROOM_EXP_S, "token_exp_s": ROOM_EXP_S},
                     sessions={"max_duration_s": LONGEST_S})
    try:
        status, body, _ = await sup.http("POST", "/start", json={
            "profile": "echo", "dailyRoomProperties": {"eject_at_room_exp": True, "enable_chat": True}})
        assert status == 200, (status, body)
        joined = await sup.wait_session(body["sessionId"], lambda d: d["state"] == "joined")
        assert joined["room_created"] and "-pool-" not in body["dailyRoom"]
        must_live_until = joined["joined_at"] + LONGEST_S
        assert await room_exp(sandbox_rest, body["dailyRoom"]) >= must_live_until, "the room expires mid-session"
        user_token = await token_props(sandbox_rest, body["dailyToken"])
        assert user_token["exp"] >= must_live_until, "the user's token expires mid-session"
    finally:
        sup.stop()


async def test_the_token_a_bot_rejoins_with_after_a_failover_outlives_the_session(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    witness = RestWitness(sandbox_proc.base_url)
    await witness.start()
    sup = supervisor(tmp_path, sandbox_proc, daily={"api_url": witness.api_url, "room_exp_s": ROOM_EXP_S,
                                                     "token_exp_s": ROOM_EXP_S},
                     sessions={"failover": True})
    try:
        bot = await sup.start_bot("echo", max_duration=LONGEST_S)
        before = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        minted = len(witness.tokens)
        os.kill(before["worker_pid"], signal.SIGKILL)
        await sup.wait_session(bot["session_id"], lambda d: d["failovers"] == 1 and d["state"] == "joined")
        fresh = [await token_props(sandbox_rest, t) for t in witness.tokens[minted:]]
        rejoin = [p for p in fresh if p.get("is_owner")]
        assert len(rejoin) == 1, f"expected one fresh owner token for the rejoin, got {fresh}"
        assert rejoin[0]["room_name"] == get_name_from_url(bot["room_url"])
        assert rejoin[0]["exp"] >= before["joined_at"] + LONGEST_S, "the rejoined bot's token expires mid-session"
    finally:
        await asyncio.to_thread(sup.stop)  # the witness, on this loop, carries its room delete
        await witness.close()


async def test_a_token_given_with_room_url_is_checked_against_the_room_and_used_by_the_bot(
    tmp_path: Path, sandbox_proc: SandboxProcess, sandbox_rest: DailyRest
) -> None:
    sup = supervisor(tmp_path, sandbox_proc)
    try:
        ours = await sandbox_rest.ok("POST", "/rooms", json={"name": "ours", "privacy": "private"})
        await sandbox_rest.ok("POST", "/rooms", json={"name": "other", "privacy": "private"})

        async def owner_token(room: str, user_id: str) -> str:
            minted = await sandbox_rest.ok("POST", "/meeting-tokens", json={"properties": {
                "room_name": room, "is_owner": True, "user_id": user_id}})
            return str(minted["token"])

        status, body, _ = await sup.http("POST", "/bots/start", json={
            "bot_profile": "echo", "room_url": ours["url"], "token": await owner_token("other", "wrong-room")})
        assert status == 400 and body["error"] == "invalid-request-error", (status, body)
        assert "token" in body["info"], body

        bot = await sup.start_bot("echo", room_url=ours["url"], token=await owner_token("ours", "given-bot"))
        await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
        presence = await sandbox_rest.ok("GET", "/rooms/ours/presence")
        assert [p["userId"] for p in presence["data"]] == ["given-bot"], presence  # the bot joined with it
    finally:
        sup.stop()
