"""Rooms route audio, messages, recording, transcription and telephony like Daily's."""

from __future__ import annotations

import asyncio
import wave
from io import BytesIO
from typing import Any

import aiohttp
from aiohttp import web

from callfleet.audio import tone
from tests.conftest import DailyRest
from tests.sdk_client import SdkTestClient
from tests.waiting import wait_until as wait_for


async def _room(rest: DailyRest, name: str, **props: Any) -> dict[str, Any]:
    return await rest.ok("POST", "/rooms", json={"name": name, "properties": props})


async def _owner_token(rest: DailyRest, room: str) -> str:
    return (await rest.ok("POST", "/meeting-tokens", json={"properties": {"room_name": room, "is_owner": True}}))["token"]


async def test_two_clients_hear_each_other_bit_exact_at_the_same_rate(rest: DailyRest) -> None:
    room = await _room(rest, "duet")
    a, b = SdkTestClient(), SdkTestClient()
    await a.join(room["url"])
    data = await b.join(room["url"])
    assert a.id in data["participants"]
    await wait_for(lambda: b.id in a.client.participants(), what="a sees b")
    a.render(b.id)
    b.render(a.id)
    await asyncio.sleep(0.1)
    pcm_a, pcm_b = tone(440, 0.4, 16000), tone(660, 0.4, 16000)
    await asyncio.gather(a.write(pcm_a), b.write(pcm_b))
    await wait_for(lambda: sum(map(len, b.heard.get(a.id, []))) >= len(pcm_a), what="b hears all of a")
    await wait_for(lambda: sum(map(len, a.heard.get(b.id, []))) >= len(pcm_b), what="a hears all of b")
    assert b"".join(b.heard[a.id]) == pcm_a
    assert b"".join(a.heard[b.id]) == pcm_b
    assert all(len(chunk) == 640 for chunk in b.heard[a.id])  # 20 ms callbacks
    assert a.heard_threads == {"sandbox-sdk"}  # renderers run on the SDK thread
    names = a.handler.names()
    assert names[:2] == ["on_call_state_updated", "on_participant_counts_updated"] or "on_participant_joined" in names
    assert a.handler.of("on_participant_joined")[0][0]["id"] == b.id
    await b.leave()
    await wait_for(lambda: a.handler.of("on_participant_left"), what="left event")
    left, reason = a.handler.of("on_participant_left")[0]
    assert left["id"] == b.id and reason == "leftCall"
    await a.leave()


async def test_a_joiner_hears_participant_joined_for_everyone_already_there(rest: DailyRest) -> None:
    # As Daily does, and as a Pipecat bot joining after its user relies on: it listens to a
    # participant from that event.
    room = await _room(rest, "late-bot")
    early, late = SdkTestClient(), SdkTestClient()
    await early.join(room["url"])
    await late.join(room["url"])
    await wait_for(lambda: late.handler.of("on_participant_joined"), what="late hears about early")
    assert [args[0]["id"] for args in late.handler.of("on_participant_joined")] == [early.id]
    names = late.handler.names()
    assert names.index("on_participant_joined") > names.index("on_call_state_updated")  # after joining
    await late.leave()
    await early.leave()


async def test_renderers_get_audio_resampled_to_their_rate_and_interval(rest: DailyRest) -> None:
    room = await _room(rest, "rates")
    a, b = SdkTestClient(rate=16000), SdkTestClient()
    await a.join(room["url"])
    await b.join(room["url"])
    b.render(a.id, rate=8000, interval_ms=40)
    await asyncio.sleep(0.1)
    await a.write(tone(300, 0.4, 16000))
    await wait_for(lambda: len(b.heard.get(a.id, [])) >= 9, what="b hears a")
    assert all(len(chunk) == 8000 * 40 // 1000 * 2 for chunk in b.heard[a.id])
    await a.leave()
    await b.leave()


async def test_app_messages_reach_the_right_participant_only(rest: DailyRest) -> None:
    room = await _room(rest, "chat")
    a, b, c = SdkTestClient(), SdkTestClient(), SdkTestClient()
    for client in (a, b, c):
        await client.join(room["url"])
    (error,) = await a.call("send_app_message", {"to": "b"}, b.id)
    assert error is None
    (error,) = await a.call("send_app_message", {"to": "all"})
    assert error is None
    await wait_for(lambda: len(b.handler.of("on_app_message")) == 2 and len(c.handler.of("on_app_message")) == 1)
    assert b.handler.of("on_app_message") == [({"to": "b"}, a.id), ({"to": "all"}, a.id)]
    assert c.handler.of("on_app_message") == [({"to": "all"}, a.id)]
    assert a.handler.of("on_app_message") == []
    (error,) = await a.call("send_app_message", {"x": "y" * 5000})
    assert error and "4096" in error
    (error,) = await a.call("send_app_message", {"x": 1}, "nobody")
    assert error and "nobody" in error
    for client in (a, b, c):
        await client.leave()


async def test_recording_writes_a_wav_of_its_duration_holding_what_was_said(rest: DailyRest, sandbox: Any) -> None:
    room = await _room(rest, "rec", enable_recording="cloud")
    bot = SdkTestClient()
    await bot.join(room["url"], await _owner_token(rest, "rec"))
    stream_id, error = await bot.call("start_recording")  # daily's (stream_id, error)
    assert error is None
    said = tone(440, 1.0, 16000)
    await bot.write(said)
    (error,) = await bot.call("stop_recording")
    assert error is None
    await wait_for(lambda: bot.handler.of("on_recording_stopped"), what="recording stopped")
    status = bot.handler.of("on_recording_started")[0][0]
    assert status["startedBy"] == bot.id and status["streamId"] == stream_id
    recordings = await rest.ok("GET", "/recordings", params={"room_name": "rec"})
    assert recordings["total_count"] == 1
    rec = recordings["data"][0]
    assert rec["status"] == "finished" and rec["room_name"] == "rec" and rec["id"] == status["recordingId"]
    link = await rest.ok("GET", f"/recordings/{rec['id']}/access-link", params={"valid_for_secs": 900})
    async with aiohttp.ClientSession() as s, s.get(link["download_link"]) as r:
        assert r.status == 200
        wav = wave.open(BytesIO(await r.read()))
    seconds = wav.getnframes() / wav.getframerate()
    assert abs(seconds - rec["duration"]) < 0.51, (seconds, rec)  # the listing's duration is whole seconds
    # The bot's audio is in the mix bit-exact from where it arrived, silence before it.
    pcm = wav.readframes(wav.getnframes())
    at = pcm.find(said[:3200])
    assert at >= 0 and at % 2 == 0, "the recording does not hold the bot's tone"
    assert pcm[:at] == bytes(at)
    assert pcm[at:] == said[: len(pcm) - at]
    assert await rest.ok("DELETE", f"/recordings/{rec['id']}") == {"deleted": True, "id": rec["id"]}
    status_code, _, _ = await rest.call("GET", f"/recordings/{rec['id']}")
    assert status_code == 404
    await bot.leave()


async def test_recording_needs_the_room_feature_and_an_owner(rest: DailyRest) -> None:
    plain = await _room(rest, "plain")
    c = SdkTestClient()
    await c.join(plain["url"], await _owner_token(rest, "plain"))
    stream_id, error = await c.call("start_recording")
    assert (stream_id, error) == (None, "Recording is not enabled for this room")
    (error,) = await c.call("start_live_stream_with_rtmp_urls", ["rtmp://x"])
    assert error and "not enabled" in error
    await c.leave()


async def test_transcription_delivers_what_callers_declare(rest: DailyRest) -> None:
    from sandbox.caller import Caller, CallerOptions

    room = await _room(rest, "words")
    bot = SdkTestClient()
    await bot.join(room["url"], await _owner_token(rest, "words"))
    (error,) = await bot.call("start_transcription", {"language": "en"})
    assert error is None
    caller = Caller(CallerOptions(room_url=room["url"], say="hello bot", seconds=0.2))
    await caller.join()
    await caller.speak()
    await wait_for(lambda: bot.handler.of("on_transcription_message"), what="transcript")
    (msg,) = bot.handler.of("on_transcription_message")[0]
    assert msg["text"] == "hello bot" and msg["participantId"] == caller.participant_id
    assert msg["rawResponse"]["is_final"] is True
    await caller.leave(0)
    (error,) = await bot.call("stop_transcription")
    assert error is None
    await wait_for(lambda: bot.handler.of("on_transcription_stopped"))
    await bot.leave()


async def test_dial_in_fires_dailys_sequence_and_the_phone_talks(rest: DailyRest, sandbox: Any) -> None:
    hooks: list[dict[str, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.json_response({"status": "OK"})

    app = web.Application()
    app.router.add_post("/dialin", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        call = await rest.ok("POST", "/sandbox/dialin", json={"webhook_url": f"http://127.0.0.1:{port}/dialin", "From": "+15550001", "To": "+15559999"})
        await wait_for(lambda: hooks, what="webhook")
        assert hooks[0] == {"From": "+15550001", "To": "+15559999", "callId": call["callId"], "callDomain": call["callDomain"], "sipHeaders": {}}
        room = await _room(rest, "sip-room", sip={"display_name": "+15550001", "video": False, "sip_mode": "dial-in", "num_endpoints": 1})
        endpoint = room["config"]["sip_uri"]["endpoint"]
        bot = SdkTestClient()
        await bot.join(room["url"], await _owner_token(rest, "sip-room"))
        await wait_for(lambda: bot.handler.of("on_dialin_ready"), what="dialin-ready")
        assert bot.handler.of("on_dialin_ready")[0] == (endpoint,)
        status, body, _ = await rest.call("POST", "/dialin/pinlessCallUpdate", json={"callId": "nope", "callDomain": call["callDomain"], "sipUri": "sip:" + endpoint})
        assert status == 404
        await rest.ok("POST", "/dialin/pinlessCallUpdate", json={"callId": call["callId"], "callDomain": call["callDomain"], "sipUri": "sip:" + endpoint})
        await wait_for(lambda: bot.handler.of("on_participant_joined"), what="phone joins")
        phone = bot.handler.of("on_participant_joined")[0][0]
        bot.render(phone["id"])
        await wait_for(lambda: len(bot.heard.get(phone["id"], [])) >= 10, what="phone audio")
        await rest.ok("POST", "/sandbox/hangup", json={"room": "sip-room", "participant_id": phone["id"]})
        await wait_for(lambda: bot.handler.of("on_participant_left"), what="hang-up")
        order = [n for n in bot.handler.names() if n.startswith(("on_dialin", "on_participant_joined", "on_participant_left"))]
        assert order == ["on_dialin_ready", "on_dialin_connected", "on_participant_joined", "on_dialin_stopped", "on_participant_left"]
        assert bot.handler.of("on_dialin_connected")[0][0]["callId"] == call["callId"]
        await bot.leave()
    finally:
        await runner.cleanup()


async def test_dial_out_and_dtmf_both_ways(rest: DailyRest, sandbox: Any) -> None:
    room = await _room(rest, "out", enable_dialout=True)
    bot = SdkTestClient()
    await bot.join(room["url"], await _owner_token(rest, "out"))
    session, error = await bot.call("start_dialout", {"phoneNumber": "+15551234"})  # daily's (session_id, error)
    assert error is None
    await wait_for(lambda: bot.handler.of("on_dialout_answered"), what="answered")
    assert bot.handler.of("on_dialout_connected")[0][0]["sessionId"] == session
    (error,) = await bot.call("send_dtmf", {"sessionId": session, "tones": "12#"})
    assert error is None
    await wait_for(lambda: len(bot.handler.of("on_dtmf_event")) == 3, what="dtmf echoed by the phone")
    assert [e[0]["tone"] for e in bot.handler.of("on_dtmf_event")] == ["1", "2", "#"]
    phones = await rest.ok("GET", "/sandbox/rooms/out/participants")
    assert [p["dtmf_heard"] for p in phones["data"] if p["kind"] == "dialout"] == ["12#"]
    (error,) = await bot.call("send_dtmf", {"sessionId": session, "tones": "x"})
    assert error and "DTMF" in error
    (error,) = await bot.call("stop_dialout", session)
    assert error is None
    await wait_for(lambda: bot.handler.of("on_dialout_stopped"), what="stopped")
    order = [n for n in bot.handler.names() if n.startswith(("on_dialout", "on_participant_joined", "on_participant_left"))]
    assert order == ["on_dialout_connected", "on_participant_joined", "on_dialout_answered", "on_dialout_stopped", "on_participant_left"]
    await bot.leave()


async def test_dial_out_needs_the_room_feature(rest: DailyRest) -> None:
    room = await _room(rest, "nodial")
    bot = SdkTestClient()
    await bot.join(room["url"], await _owner_token(rest, "nodial"))
    session, error = await bot.call("start_dialout", {"phoneNumber": "+1555"})
    assert (session, error) == (None, "Dial-out is not enabled for this room")
    await bot.leave()


async def test_eject_at_room_exp_ejects_participants(rest: DailyRest, sandbox: Any) -> None:
    room = await _room(rest, "brief", exp=sandbox.wall_clock() + 60, eject_at_room_exp=True)
    c = SdkTestClient()
    await c.join(room["url"])
    sandbox.wall_clock.advance(61)
    await wait_for(lambda: "left" in [a[0] for a in c.handler.of("on_call_state_updated")], timeout=5, what="ejection")
    assert any("ended" in str(a[0]) for a in c.handler.of("on_error"))
    c.client.release()


async def test_room_deleted_under_participants_ejects_them(rest: DailyRest) -> None:
    room = await _room(rest, "doomed")
    c = SdkTestClient()
    await c.join(room["url"])
    await rest.ok("DELETE", "/rooms/doomed")
    await wait_for(lambda: "left" in [a[0] for a in c.handler.of("on_call_state_updated")], what="ejection")
    c.client.release()


async def test_join_failure_reports_like_daily(sandbox: Any) -> None:
    c = SdkTestClient()
    data, error = await c.call("join", f"{sandbox.base_url}/missing")
    assert data is None and "does not exist" in error
    states = [a[0] for a in c.handler.of("on_call_state_updated")]
    assert states == ["joining", "leaving", "left"]
    data, error = await c.call("join", "http://127.0.0.1:9/unreachable")
    assert data is None and "Failed to fetch room information" in error
    c.client.release()


async def test_room_server_disconnect_fault_makes_clients_leave_with_an_error(rest: DailyRest) -> None:
    room = await _room(rest, "flaky")
    a, b = SdkTestClient(), SdkTestClient()
    await a.join(room["url"])
    await b.join(room["url"])
    reply = await rest.ok("POST", "/sandbox/faults", json={"disconnect": "flaky"})
    assert reply["disconnected"] == 2
    await wait_for(lambda: "left" in [x[0] for x in a.handler.of("on_call_state_updated")], timeout=10, what="a notices")
    assert any("lost" in str(x[0]) for x in a.handler.of("on_error"))
    assert (await rest.ok("GET", "/rooms/flaky/presence"))["total_count"] == 0
    a.client.release()
    b.client.release()


async def test_token_eject_rules_are_honoured(rest: DailyRest, sandbox: Any) -> None:
    room = await _room(rest, "timed")
    token = (await rest.ok("POST", "/meeting-tokens", json={"properties": {
        "room_name": "timed", "exp": sandbox.wall_clock() + 60, "eject_at_token_exp": True}}))["token"]
    elapsed = (await rest.ok("POST", "/meeting-tokens", json={"properties": {
        "room_name": "timed", "eject_after_elapsed": 60}}))["token"]
    a, b, c = SdkTestClient(), SdkTestClient(), SdkTestClient()
    await a.join(room["url"], token)
    await b.join(room["url"], elapsed)
    await c.join(room["url"])
    sandbox.wall_clock.advance(61)
    for client in (a, b):
        await wait_for(lambda client=client: "left" in [x[0] for x in client.handler.of("on_call_state_updated")], timeout=5, what="eject")
        assert any("ejected" in str(x[0]) for x in client.handler.of("on_error"))
    assert "left" not in [x[0] for x in c.handler.of("on_call_state_updated")]
    for client in (a, b):
        client.client.release()
    await c.leave()
