"""The sandbox's REST API answers like Daily's: bodies, status codes, errors, limits."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from sandbox.caller import Caller, CallerOptions
from sandbox.connection import JoinError
from tests.conftest import DailyRest
from tests.waiting import wait_until as wait_for


async def test_room_lifecycle_in_dailys_shapes(rest: DailyRest, sandbox: Any) -> None:
    room = await rest.ok("POST", "/rooms", json={"name": "bot-123", "privacy": "private",
                                                 "properties": {"exp": int(time.time()) + 600, "eject_at_room_exp": True}})
    assert set(room) == {"id", "name", "api_created", "privacy", "url", "created_at", "config"}
    assert room["name"] == "bot-123" and room["privacy"] == "private" and room["api_created"] is True
    assert room["url"] == f"{sandbox.base_url}/bot-123"
    assert room["created_at"].endswith(".000Z")
    assert room["config"]["eject_at_room_exp"] is True
    assert await rest.ok("GET", "/rooms/bot-123") == room
    updated = await rest.ok("POST", "/rooms/bot-123", json={"properties": {"enable_dialout": True}})
    assert updated["config"]["enable_dialout"] is True
    assert await rest.ok("DELETE", "/rooms/bot-123") == {"deleted": True, "name": "bot-123"}
    status, body, _ = await rest.call("GET", "/rooms/bot-123")
    assert (status, body["error"]) == (404, "not-found")
    status, body, _ = await rest.call("DELETE", "/rooms/bot-123")
    assert (status, body["error"]) == (404, "not-found")


async def test_room_name_is_generated_validated_and_unique(rest: DailyRest) -> None:
    generated = await rest.ok("POST", "/rooms", json={})
    assert len(generated["name"]) == 20 and generated["privacy"] == "public"
    for bad in ("has space", "x" * 129, "", "slash/no"):
        status, body, _ = await rest.call("POST", "/rooms", json={"name": bad})
        assert (status, body["error"]) == (400, "invalid-request-error"), bad
    await rest.ok("POST", "/rooms", json={"name": "taken"})
    status, body, _ = await rest.call("POST", "/rooms", json={"name": "taken"})
    assert (status, body["error"]) == (400, "invalid-request-error")
    assert "already exists" in body["info"]


async def test_bad_bodies_get_dailys_errors(rest: DailyRest, sandbox: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(sandbox.api_url + "/rooms", data="{nope", headers={"Authorization": "Bearer k", "Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "json-parsing-error"
    status, body, _ = await rest.call("POST", "/rooms", json={"properties": {"bogus": 1}})
    assert status == 400 and "bogus is not a valid room property" in body["info"]
    status, body, _ = await rest.call("POST", "/rooms", json={"properties": {"exp": "soon"}})
    assert status == 400 and "exp must be" in body["info"]
    status, body, _ = await rest.call("POST", "/rooms", json={"privacy": "secret"})
    assert status == 400 and "privacy" in body["info"]
    status, body, _ = await rest.call("GET", "/nothing-here")
    assert (status, body["error"]) == (404, "not-found")


async def test_authorization_header_is_required(sandbox: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(sandbox.api_url + "/rooms") as r:
            body = await r.json()
            assert r.status == 400 and body == {"error": "authorization-header-error", "info": "Authorization header missing"}
        async with s.get(sandbox.api_url + "/rooms", headers={"Authorization": "Basic abc"}) as r:
            assert r.status == 400 and (await r.json())["error"] == "authorization-header-error"


async def test_a_configured_api_key_is_enforced(tmp_path: Any) -> None:
    from sandbox.server import Sandbox

    async with Sandbox(api_key="right", data_dir=tmp_path) as sb:
        wrong, right = DailyRest(sb.api_url, "wrong"), DailyRest(sb.api_url, "right")
        try:
            status, body, _ = await wrong.call("GET", "/rooms")
            assert (status, body["error"]) == (401, "authentication-error")
            assert (await right.ok("GET", "/rooms"))["total_count"] == 0
        finally:
            await wrong.close()
            await right.close()


async def test_pagination_walks_forward_and_backward_newest_first(rest: DailyRest) -> None:
    names = [f"room-{i:02d}" for i in range(7)]
    for name in names:
        await rest.ok("POST", "/rooms", json={"name": name})
    newest_first = list(reversed(names))
    first = await rest.ok("GET", "/rooms", params={"limit": 3})
    assert first["total_count"] == 7
    assert [r["name"] for r in first["data"]] == newest_first[:3]
    second = await rest.ok("GET", "/rooms", params={"limit": 3, "starting_after": first["data"][-1]["id"]})
    assert [r["name"] for r in second["data"]] == newest_first[3:6]
    third = await rest.ok("GET", "/rooms", params={"limit": 3, "starting_after": second["data"][-1]["id"]})
    assert [r["name"] for r in third["data"]] == newest_first[6:]
    back = await rest.ok("GET", "/rooms", params={"limit": 3, "ending_before": third["data"][0]["id"]})
    assert [r["name"] for r in back["data"]] == newest_first[3:6]
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"starting_after": "nope"}):
        status, body, _ = await rest.call("GET", "/rooms", params=bad)
        assert status == 400 and body["error"] == "invalid-request-error", bad


async def test_expired_rooms_are_not_listed_or_found(rest: DailyRest, sandbox: Any) -> None:
    await rest.ok("POST", "/rooms", json={"name": "short", "properties": {"exp": sandbox.wall_clock() + 60}})
    assert (await rest.ok("GET", "/rooms"))["total_count"] == 1
    sandbox.wall_clock.advance(61)
    assert (await rest.ok("GET", "/rooms"))["total_count"] == 0
    status, _, _ = await rest.call("GET", "/rooms/short")
    assert status == 404


async def test_meeting_tokens_are_issued_and_validated(rest: DailyRest, sandbox: Any) -> None:
    props = {"room_name": "r", "is_owner": True, "user_name": "Bot", "user_id": "u1", "exp": int(time.time()) + 60}
    token = (await rest.ok("POST", "/meeting-tokens", json={"properties": props}))["token"]
    assert token.startswith("eyJ")
    assert await rest.ok("GET", f"/meeting-tokens/{token}") == props
    status, body, _ = await rest.call("POST", "/meeting-tokens", json={"properties": {"exp": int(time.time()) - 5}})
    assert status == 400 and "exp" in body["info"]
    status, body, _ = await rest.call("POST", "/meeting-tokens", json={"properties": {"is_owner": "yes"}})
    assert status == 400 and "is_owner" in body["info"]
    status, body, _ = await rest.call("GET", "/meeting-tokens/" + token[:-3] + "abc")
    assert status == 400 and body["error"] == "invalid-request-error"
    short = (await rest.ok("POST", "/meeting-tokens", json={"properties": {"exp": sandbox.wall_clock() + 60}}))["token"]
    sandbox.wall_clock.advance(61)
    status, body, _ = await rest.call("GET", f"/meeting-tokens/{short}")
    assert status == 400 and "expired" in body["info"]


async def _join(room_url: str, token: str | None = None) -> Caller:
    caller = Caller(CallerOptions(room_url=room_url, token=token))
    await caller.join()
    return caller


async def test_token_rules_refuse_joins_with_dailys_error_text(rest: DailyRest, sandbox: Any) -> None:
    private = await rest.ok("POST", "/rooms", json={"name": "private", "privacy": "private"})
    await rest.ok("POST", "/rooms", json={"name": "other"})
    cases = {
        "private room without token": (None, "not allowed to join"),
        "expired token": ({"room_name": "private", "exp": sandbox.wall_clock() + 60}, "Meeting token has expired"),
        "wrong room": ({"room_name": "other"}, "not valid for this room"),
        "not yet valid": ({"room_name": "private", "nbf": int(sandbox.wall_clock()) + 600}, "not yet valid"),
    }
    tokens = {}
    for name, (props, _) in cases.items():
        tokens[name] = None if props is None else (await rest.ok("POST", "/meeting-tokens", json={"properties": props}))["token"]
    sandbox.wall_clock.advance(61)  # past the expired token's exp, short of the other's nbf
    for name, (_, text) in cases.items():
        try:
            await _join(private["url"], tokens[name])
        except JoinError as exc:
            assert text in str(exc), (name, str(exc))
        else:
            raise AssertionError(f"{name}: join was allowed")
    ok = (await rest.ok("POST", "/meeting-tokens", json={"properties": {"room_name": "private"}}))["token"]
    caller = await _join(private["url"], ok)
    await caller.conn.leave()
    try:
        await _join(f"{sandbox.base_url}/no-such-room")
    except JoinError as exc:
        assert "does not exist" in str(exc)
    else:
        raise AssertionError("joined a room that does not exist")


async def test_rate_limit_answers_429_with_retry_after_then_recovers(tmp_path: Any) -> None:
    from sandbox.server import Sandbox

    now = [1000.0]  # the buckets' clock stands still until the test moves it
    async with Sandbox(data_dir=tmp_path, clock=lambda: now[0]) as sb:
        rest = DailyRest(sb.api_url)
        try:
            statuses = []
            for _ in range(110):  # bucket holds 100
                status, body, headers = await rest.call("GET", "/rooms")
                statuses.append(status)
                if status == 429:
                    assert body["error"] == "rate-limit-error"
                    assert int(headers["Retry-After"]) >= 1
            assert statuses.count(200) == 100 and statuses[-10:] == [429] * 10
            now[0] += 0.2  # 20 tokens/s: four are back
            assert [(await rest.call("GET", "/rooms"))[0] for _ in range(5)] == [200] * 4 + [429]
        finally:
            await rest.close()


async def test_injected_faults_are_switchable_at_run_time(rest: DailyRest, sandbox: Any) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(sandbox.api_url + "/sandbox/faults", json={"rate_limit_burst": 2, "retry_after_s": 3}) as r:
            assert r.status == 200
        async with s.post(sandbox.api_url + "/sandbox/faults", json={"nonsense": 1}) as r:
            assert r.status == 400
    for _ in range(2):
        status, body, headers = await rest.call("GET", "/rooms")
        assert status == 429 and headers["Retry-After"] == "3"
    assert (await rest.call("GET", "/rooms"))[0] == 200
    sandbox.faults.error_rate = 1.0
    status, body, _ = await rest.call("GET", "/rooms")
    assert (status, body["error"]) == (500, "server-error")
    sandbox.faults.error_rate = 0.0
    sandbox.faults.stall_rate, sandbox.faults.stall_s = 1.0, 0.5
    started = time.monotonic()
    assert (await rest.call("GET", "/rooms"))[0] == 200
    assert time.monotonic() - started >= 0.5
    sandbox.faults.stall_rate = 0.0
    sandbox.faults.latency_ms = 200
    started = time.monotonic()
    await rest.call("GET", "/rooms")
    assert time.monotonic() - started >= 0.2


async def test_presence_app_messages_and_eject(rest: DailyRest, sandbox: Any) -> None:
    room = await rest.ok("POST", "/rooms", json={"name": "lobby"})
    a, b = await _join(room["url"]), await _join(room["url"])
    presence = await rest.ok("GET", "/rooms/lobby/presence")
    assert presence["total_count"] == 2
    assert {p["id"] for p in presence["data"]} == {a.participant_id, b.participant_id}
    assert set(presence["data"][0]) == {"room", "id", "userId", "userName", "joinTime", "duration"}
    everywhere = await rest.ok("GET", "/presence")
    assert len(everywhere["lobby"]) == 2
    assert await rest.ok("POST", "/rooms/lobby/send-app-message", json={"data": {"hello": 1}, "recipient": b.participant_id}) == {"sent": True}
    status, body, _ = await rest.call("POST", "/rooms/lobby/send-app-message", json={"data": {"x": "y" * 5000}})
    assert status == 400 and "4 KB" in body["info"]
    await wait_for(lambda: b.app_messages, what="b gets the message")
    assert b.app_messages == [({"hello": 1}, "rest-api")] and a.app_messages == []
    ejected = await rest.ok("POST", "/rooms/lobby/eject", json={"ids": [a.participant_id, "ghost"]})
    assert ejected == {"ejectedIds": [a.participant_id]}
    await wait_for(lambda: a.left_reason is not None, what="a is told it was ejected")
    assert a.left_reason == "ejected"
    assert (await rest.ok("GET", "/rooms/lobby/presence"))["total_count"] == 1
    await b.conn.leave()
