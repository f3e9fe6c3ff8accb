"""The HTTP API end to end: the shapes Daily Bots and Pipecat users already send."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.caller import Caller, CallerOptions
from tests.conftest import REPO, SandboxProcess
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

SEED_BODIES = json.loads((REPO / "tests" / "data" / "seed_bots_start_bodies.json").read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxProcess, SupervisorProcess]]:
    sandbox = SandboxProcess("--no-rate-limits")
    sup = SupervisorProcess(tmp_path_factory.mktemp("api"), sandbox.port,
                            pool={"min_idle": 2, "max_workers": 6},
                            daily={"request_timeout_s": 1.0, "max_retries": 1},
                            sessions={"idle_timeout_s": 20})
    sup.start()
    try:
        yield sandbox, sup
    finally:
        sup.stop()
        sandbox.stop()


@pytest.fixture
def sup(stack: tuple[SandboxProcess, SupervisorProcess]) -> SupervisorProcess:
    return stack[1]


@pytest.fixture
def sandbox(stack: tuple[SandboxProcess, SupervisorProcess]) -> SandboxProcess:
    return stack[0]


async def sandbox_call(sandbox: SandboxProcess, method: str, path: str, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as s, \
            s.request(method, sandbox.api_url + path, **kwargs) as r:
        return await r.json()


async def stop(sup: SupervisorProcess, sid: str) -> None:
    await sup.http("DELETE", f"/sessions/{sid}")
    await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"))


async def test_every_seed_bots_start_body_is_accepted_verbatim(sup: SupervisorProcess) -> None:
    assert {b["bot_profile"] for b in SEED_BODIES} >= {"voice_2024_10", "vision_2024_10"}
    for body in SEED_BODIES:
        status, reply, _ = await sup.http("POST", "/bots/start", json=body)
        assert status == 200, (body["bot_profile"], reply)
        assert set(reply) == {"room_url", "token", "session_id", "stream_token"}
        detail = await sup.wait_session(reply["session_id"], lambda d: d["state"] == "joined")
        assert detail["kind"] == "stream" and detail["profile"] == body["bot_profile"]
        await stop(sup, reply["session_id"])


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"bot_profile": "voice_2024_10", "services": {"tts": "nope"}}, 422, "services.tts: unknown provider 'nope'"),
    ({"bot_profile": "voice_2024_10", "services": {"vision": "x"}}, 422, "services.vision: unknown service type"),
    ({"bot_profile": "openai_realtime_beta_2024_10", "services": {"tts": "cartesia"}}, 422, "does not use a tts"),
    ({"bot_profile": "voice_2024_10", "config": [{"service": "llm", "options": [{"name": "bogus", "value": 1}]}]},
     422, "config[0].options[0]: unknown llm option for anthropic 'bogus'"),
    ({"bot_profile": "voice_2024_10", "service_options": {"cartesia": {"warp": 9}}}, 422,
     "service_options.cartesia.warp: unknown option"),
    ({"bot_profile": "voice_2024_10", "service_options": {"acme": {}}}, 422, "service_options.acme: unknown provider"),
    ({"bot_profile": "no_such_profile"}, 422, "unknown profile 'no_such_profile'"),
    ({"bot_profile": "echo", "max_duration": 30}, 400, "max_duration: expected int in 60..14400"),
    ({"bot_profile": "echo", "max_duration": 20000}, 400, "max_duration: expected int in 60..14400"),
    ({"bot_profile": "echo", "max_duration": "long"}, 400, "max_duration: expected int | null, got str"),
    ({"bot_profile": 7}, 400, "bot_profile: expected str, got int"),
    ({}, 400, "missing required field `bot_profile`"),
    ({"bot_profile": "echo", "surprise": 1}, 400, "unknown field `surprise`"),
    ({"bot_profile": "echo", "config": [{"service": "llm", "options": [{"name": "model"}]}]}, 400,
     "config[0].options[0]: object missing required field `value`"),
])
async def test_bad_bots_start_bodies_get_precise_errors(sup: SupervisorProcess, body: dict[str, Any], status: int, text: str) -> None:
    got, reply, _ = await sup.http("POST", "/bots/start", json=body)
    assert got == status and reply["error"] == "invalid-request-error", reply
    assert text.replace("`", "") in reply["info"].replace("`", ""), reply["info"]


async def test_malformed_and_oversized_bodies(sup: SupervisorProcess) -> None:
    status, reply, _ = await sup.http("POST", "/bots/start", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in reply["info"]
    status, reply, _ = await sup.http("POST", "/bots/start", data=b"x" * (1024 * 1024 + 10))
    assert status == 413 and reply["error"] == "invalid-request-error"
    status, reply, _ = await sup.http("GET", "/sessions", params={"state": "sleepy"})
    assert status == 400 and "state" in reply["info"]
    status, reply, _ = await sup.http("GET", "/nowhere")
    assert status == 404 and reply["error"] == "not-found"
    status, reply, _ = await sup.http("PUT", "/sessions")
    assert status == 405 and reply["error"] == "invalid-request-error"


async def test_pipecat_start_shape_and_body_reaches_the_engine(sup: SupervisorProcess) -> None:
    status, reply, _ = await sup.http("POST", "/start", json={
        "createDailyRoom": True, "dailyRoomProperties": {"enable_recording": "cloud"},
        "dailyMeetingTokenProperties": {"user_name": "Pat"}, "body": {"customer": 42}})
    assert status == 200, reply
    assert set(reply) == {"dailyRoom", "dailyToken", "sessionId", "streamToken"}
    token = await sandbox_props(sup, reply["dailyToken"])
    assert token["user_name"] == "Pat" and token["is_owner"] is False
    async with aiohttp.ClientSession() as s, s.ws_connect(
            f"{sup.url}/sessions/{reply['sessionId']}/stream?token={reply['streamToken']}") as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "config" and first["session_id"] == reply["sessionId"]
        assert first["body"] == {"customer": 42} and first["audio"]["sample_rate"] == 16000
    status, reply2, _ = await sup.http("POST", "/start", json={"createDailyRoom": False})
    assert status == 400 and "createDailyRoom" in reply2["info"]
    await stop(sup, reply["sessionId"])


async def sandbox_props(sup: SupervisorProcess, token: str) -> Any:
    port = sup.config["sandbox"]["port"]
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as s, \
            s.get(f"http://127.0.0.1:{port}/v1/meeting-tokens/{token}") as r:
        return await r.json()


async def test_sessions_list_detail_and_state_filter(sup: SupervisorProcess) -> None:
    bot = await sup.start_bot("echo")
    await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
    status, listing, _ = await sup.http("GET", "/sessions", params={"state": "joined"})
    assert status == 200 and bot["session_id"] in [s["session_id"] for s in listing["data"]]
    assert all(s["state"] == "joined" for s in listing["data"])
    await stop(sup, bot["session_id"])
    status, listing, _ = await sup.http("GET", "/sessions", params={"state": "ended"})
    assert bot["session_id"] in [s["session_id"] for s in listing["data"]]
    status, reply, _ = await sup.http("POST", f"/sessions/{bot['session_id']}/app-message", json={"message": {}})
    assert status == 409 and "finished" in reply["info"]
    status, reply, _ = await sup.http("POST", "/sessions/nope/app-message", json={"message": {}})
    assert status == 404


async def test_app_messages_both_ways_through_a_stream_engine(sup: SupervisorProcess) -> None:
    bot = await sup.start_bot("stream")
    sid = bot["session_id"]
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{sup.url}/sessions/{sid}/stream?token={bot['stream_token']}") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "config"
        await sup.wait_session(sid, lambda d: d["state"] == "joined")  # a message sent before the bot is in is lost
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.5,
                                      app_messages=[{"from": "caller"}]))
        await caller.join()
        await caller.speak()
        events = await collect(ws, until=lambda e: e.get("event") == "app_message", seconds=10)
        app = [e for e in events if e.get("event") == "app_message"][0]
        assert app["data"]["message"] == {"from": "caller"} and app["data"]["sender"] == caller.participant_id
        status, reply, _ = await sup.http("POST", f"/sessions/{sid}/app-message", json={"message": {"from": "api"}})
        assert status == 200 and reply == {"sent": True}
        await ws.send_json({"type": "command", "id": 1, "command": "send_app_message", "args": {"message": {"from": "engine"}}})
        await collect(ws, until=lambda e: e.get("type") == "reply" and e["id"] == 1 and e["ok"], seconds=10)
        await wait_until(lambda: [m for m, _ in caller.app_messages] == [{"from": "api"}, {"from": "engine"}], what="app messages")
        await caller.leave(0)
    await sup.wait_session(sid, lambda d: d["state"] == "ended")


async def collect(ws: aiohttp.ClientWebSocketResponse, until: Any, seconds: float) -> list[dict[str, Any]]:
    """Text messages until one satisfies ``until`` (binary frames are skipped)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.TEXT:
            got.append(json.loads(msg.data))
            if until(got[-1]):
                return got
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
    raise AssertionError(f"condition not met; got {got[-5:]}")


async def test_stream_engine_hears_callers_and_speaks_back(sup: SupervisorProcess) -> None:
    bot = await sup.start_bot("stream")
    sid = bot["session_id"]
    url = f"{sup.url}/sessions/{sid}/stream?token={bot['stream_token']}"
    async with aiohttp.ClientSession() as s:
        status, reply, _ = await sup.http("GET", f"/sessions/{sid}/stream", params={"token": "wrong"})
        assert status == 401 and reply["error"] == "authentication-error"
        async with s.ws_connect(url) as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "config"
            status, reply, _ = await sup.http("GET", f"/sessions/{sid}/stream", params={"token": bot["stream_token"]})
            assert status == 409  # one engine at a time
            caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=1.0, await_echo=True,
                                          await_echo_timeout_s=15))
            await caller.join()
            speaking = asyncio.ensure_future(caller.speak())
            heard = 0
            deadline = time.monotonic() + 15
            # The engine is an echo: what it hears, it says back (minus the participant header).
            # Echo until the caller has finished and nothing more arrives for 0.5 s.
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=0.5)
                except TimeoutError:
                    if speaking.done() and heard >= 10:
                        break
                    continue
                if msg.type == aiohttp.WSMsgType.BINARY:
                    n = msg.data[0]
                    assert msg.data[1 : 1 + n].decode() == caller.participant_id
                    await ws.send_bytes(msg.data[1 + n :])
                    heard += 1
            await speaking
            await wait_until(lambda: caller.echoes >= caller.frames_sent - 2, timeout=5, what="echo through the engine")
            # garbage gets a clear error and the socket stays usable
            await ws.send_str("this is not json")
            assert "not JSON" in (await collect(ws, lambda e: e.get("type") == "error", 5))[-1]["error"]
            await ws.send_bytes(b"\x01\x02\x03")
            assert "16-bit" in (await collect(ws, lambda e: e.get("type") == "error", 5))[-1]["error"]
            await ws.send_json({"type": "command", "id": 9, "command": "teleport", "args": {}})
            reply = (await collect(ws, lambda e: e.get("id") == 9, 5))[-1]
            assert reply["ok"] is False and "unknown command" in reply["error"]
            await ws.send_json({"type": "command", "id": 10, "command": "leave"})
            await collect(ws, lambda e: e.get("id") == 10, 5)
        await caller.leave(0)
    done = await sup.wait_session(sid, lambda d: d["state"] == "ended")
    assert done["end_reason"] == "bot_ended"


async def test_dialin_from_a_simulated_phone_call_to_a_talking_bot(sup: SupervisorProcess, sandbox: SandboxProcess) -> None:
    status, reply, _ = await sup.http("POST", "/dialin", json={"test": "ping"})
    assert status == 200 and reply == {"status": "OK"}
    status, reply, _ = await sup.http("POST", "/dialin", json={"From": "+1555"})
    assert status == 400 and "missing required field" in reply["info"]
    call = await sandbox_call(sandbox, "POST", "/sandbox/dialin",
                              json={"webhook_url": f"{sup.url}/dialin", "From": "+15550100", "To": "+15550199"})
    async def with_the_phone() -> list[str]:
        _, listing, _ = await sup.http("GET", "/sessions", params={"state": "joined"})
        return [s["session_id"] for s in listing["data"]
                if s["profile"] == "echo" and s["room_url"] and len(s["participants"]) >= 2]

    [sid] = await wait_until(with_the_phone, 15, "the dial-in session with the phone in it", interval=0.2)
    detail = await sup.session(sid)
    room = detail["room_url"].rsplit("/", 1)[1]

    # The phone speaks a tone; the echo bot plays it back; the phone hears it.
    async def phone() -> dict[str, Any]:
        people = (await sandbox_call(sandbox, "GET", f"/sandbox/rooms/{room}/participants"))["data"]
        return dict(next(p for p in people if p["kind"] == "dialin"))

    heard = await wait_until(phone, 15, "the phone hearing its echo", until=lambda p: p["loud_frames_heard"] > 20)
    assert heard["number"] == "+15550100"
    assert call["callId"]
    await sandbox_call(sandbox, "POST", "/sandbox/hangup", json={"room": room, "participant_id": heard["id"]})
    done = await sup.wait_session(sid, lambda d: d["state"] == "ended")
    assert done["end_reason"] == "participant_left"


async def test_dialout_and_dtmf_through_stream_commands(sup: SupervisorProcess) -> None:
    status, bot, _ = await sup.http("POST", "/start", json={"dailyRoomProperties": {"enable_dialout": True}})
    assert status == 200, bot
    sid = bot["sessionId"]
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{sup.url}/sessions/{sid}/stream?token={bot['streamToken']}") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "config"
        await sup.wait_session(sid, lambda d: d["state"] == "joined")
        await ws.send_json({"type": "command", "id": 1, "command": "start_dialout", "args": {"settings": {"phoneNumber": "+15550111"}}})
        events = await collect(ws, lambda e: e.get("event") == "dialout_answered", 10)
        assert any(e.get("id") == 1 and e["ok"] for e in events)
        session_id = next(e for e in events if e.get("event") == "dialout_connected")["data"]["data"]["sessionId"]
        await ws.send_json({"type": "command", "id": 2, "command": "send_dtmf", "args": {"settings": {"sessionId": session_id, "tones": "42"}}})
        events = await collect(ws, lambda e: e.get("event") == "dtmf_event" and e["data"]["data"]["tone"] == "2", 10)
        assert [e["data"]["data"]["tone"] for e in events if e.get("event") == "dtmf_event"] == ["4", "2"]
        await ws.send_json({"type": "command", "id": 3, "command": "stop_dialout", "args": {"participant_id": session_id}})
        await collect(ws, lambda e: e.get("event") == "dialout_stopped", 10)
    await stop(sup, sid)


async def test_playback_is_heard_in_full_and_in_time(sup: SupervisorProcess, tmp_path: Path) -> None:
    bot = await sup.start_bot("playback")  # 3 s of 440 Hz, then leaves
    record = tmp_path / "heard.wav"
    caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.1, record=record, markers=False))
    await caller.join()
    joined = time.monotonic()
    done = await sup.wait_session(bot["session_id"], lambda d: d["state"] == "ended", timeout=20)
    elapsed = time.monotonic() - joined
    assert done["end_reason"] == "bot_ended"
    await caller.leave(0)
    from callfleet.audio import read_wav, rms

    pcm, rate, _ = read_wav(record)
    loud = sum(1 for i in range(0, len(pcm), 640) if rms(pcm[i : i + 640]) > 1000)
    assert 145 <= loud <= 151, loud  # 3 s = 150 frames of tone, none lost or doubled
    assert 2.9 < elapsed < 6, elapsed  # played at real-time pace, not dumped at once


async def test_recorder_files_match_what_callers_said(sup: SupervisorProcess, sandbox: SandboxProcess) -> None:
    bot = await sup.start_bot("recorder")
    sid = bot["session_id"]
    caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=1.0, markers=False, tone_hz=300))
    await caller.join()
    room = bot["room_url"].rsplit("/", 1)[1]

    async def bot_renders_caller() -> bool:
        people = (await sandbox_call(sandbox, "GET", f"/sandbox/rooms/{room}/participants"))["data"]
        return any(f"{caller.participant_id}/microphone" in p["renders"] for p in people)

    # Audio before the bot subscribes is rightly never heard.
    await wait_until(bot_renders_caller, 10, "the bot subscribed to the caller")
    await caller.speak()
    await caller.leave(0.3)
    await sup.wait_session(sid, lambda d: d["state"] == "ended")
    directory = sup.run_dir / "recordings" / sid
    files = list(directory.glob("*.wav"))
    assert len(files) == 1
    from callfleet.audio import read_wav, tone

    pcm, rate, channels = read_wav(files[0])
    said = tone(300, 1.0, 16000)
    assert rate == 16000 and channels == 1
    assert len(pcm) == len(said) and pcm == said  # bit-exact: nothing lost, nothing resampled


async def test_metrics_healthz_and_openapi(sup: SupervisorProcess) -> None:
    status, text, _ = await sup.http("GET", "/metrics")
    assert status == 200
    for series in ("callfleet_sessions", "callfleet_workers", "callfleet_session_start_latency_seconds_bucket",
                   "callfleet_frames_routed_total", "callfleet_worker_restarts_total", "callfleet_rest_retries_total"):
        assert series in text, series
    assert all(line.startswith(("#", "callfleet_")) for line in text.splitlines() if line)
    status, health, _ = await sup.http("GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
    status, doc, _ = await sup.http("GET", "/openapi.json")
    from openapi_spec_validator import validate

    validate(doc)
    from supervisor.http.views import ROUTES

    routed = {(m.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", p)) for m, p, _ in ROUTES}  # {tail:.*} -> {tail}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routed == documented


async def test_rest_failures_map_to_502_and_504(sup: SupervisorProcess, sandbox: SandboxProcess) -> None:
    await sandbox_call(sandbox, "POST", "/sandbox/faults", json={"error_rate": 1.0})
    try:
        status, reply, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 502 and reply["error"] == "daily-api-error" and "500" in reply["info"]
    finally:
        await sandbox_call(sandbox, "POST", "/sandbox/faults", json={"error_rate": 0.0})
    await sandbox_call(sandbox, "POST", "/sandbox/faults", json={"stall_rate": 1.0, "stall_s": 3.0})
    try:
        status, reply, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 504 and "timeout" in reply["info"]
    finally:
        await sandbox_call(sandbox, "POST", "/sandbox/faults", json={"stall_rate": 0.0})
    await asyncio.sleep(0.5)


async def test_bearer_key_is_required_when_configured(tmp_path: Path, sandbox: SandboxProcess) -> None:
    os.environ["CALLFLEET_TEST_KEY"] = "s3cret"
    sup = SupervisorProcess(tmp_path, sandbox.port, supervisor={"api_key_env": "CALLFLEET_TEST_KEY"}, pool={"min_idle": 0})
    sup.start()
    try:
        status, reply, _ = await sup.http("GET", "/sessions")
        assert status == 401 and reply["error"] == "authentication-error"
        status, _, _ = await sup.http("GET", "/sessions", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, _ = await sup.http("GET", "/sessions", headers={"Authorization": "Bearer s3cret"})
        assert status == 200
        assert (await sup.http("GET", "/healthz"))[0] == 200
        assert "s3cret" not in sup.log_path.read_text()
    finally:
        sup.stop()
        del os.environ["CALLFLEET_TEST_KEY"]


async def test_echo_is_heard_back_by_several_concurrent_callers(sup: SupervisorProcess, sandbox: SandboxProcess,
                                                                tmp_path: Path) -> None:
    """Two people talk at once: each hears the bot's echo of both (mixed into one voice)."""
    import numpy as np

    from callfleet.audio import read_wav

    bot = await sup.start_bot("echo")
    await sup.wait_session(bot["session_id"], lambda d: d["state"] == "joined")
    callers = [Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=2.0, tone_hz=hz,
                                    markers=False, record=tmp_path / f"{hz}.wav", user_name=f"c{hz}"))
               for hz in (300, 700)]
    for caller in callers:
        await caller.join()
    room = bot["room_url"].rsplit("/", 1)[1]
    microphones = {f"{c.participant_id}/microphone" for c in callers}

    async def the_bot_renders() -> set[str]:
        people = (await sandbox_call(sandbox, "GET", f"/sandbox/rooms/{room}/participants"))["data"]
        return {r for p in people if f"{p['id']}/microphone" not in microphones for r in p["renders"]}

    await wait_until(the_bot_renders, 10, "the bot subscribed to both callers", until=microphones.issubset)
    await asyncio.gather(*(c.speak() for c in callers))
    await asyncio.gather(*(c.leave(0.5) for c in callers))
    for caller, own in zip(callers, (300, 700), strict=True):
        pcm, rate, _ = read_wav(caller.opts.record)
        samples = np.frombuffer(pcm, "<i2").astype(np.float64)
        spectrum = np.abs(np.fft.rfft(samples))
        freqs = np.fft.rfftfreq(len(samples), 1 / rate)
        def energy(hz: float, spectrum: Any = spectrum, freqs: Any = freqs) -> float:
            return float(spectrum[(freqs > hz - 10) & (freqs < hz + 10)].sum())
        noise = float(spectrum[(freqs > 1500) & (freqs < 2500)].sum()) / 10
        # A caller's own voice can only come back through the bot: it hears its echo.
        assert energy(own) > 20 * noise, (own, energy(own), noise)
        # It hears the other caller (100 frames) and the bot (100 frames of mixed echo): the
        # bot speaks in real time with one voice, not 200 frames of echoes queued in turn.
        assert 180 <= caller.frames_heard <= 220, caller.frames_heard


async def test_playback_session_fails_naming_its_wav_when_the_file_is_gone(sandbox: SandboxProcess,
                                                                         tmp_path: Path) -> None:
    from callfleet.audio import tone, write_wav

    wav = tmp_path / "greeting.wav"
    write_wav(wav, tone(300, 0.5, 16000), 16000)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[profiles.greeting]\nkind = "playback"\nwav = "{wav}"\nstart = "joined"\n')
    own = SupervisorProcess(tmp_path, sandbox.port, supervisor={"profiles": str(profiles)},
                            pool={"min_idle": 1, "max_workers": 1})
    own.start()  # the WAV is checked, and fine, when profiles load
    try:
        wav.unlink()  # gone before the session: the bot must not sit in the call silently
        bot = await own.start_bot("greeting")
        done = await own.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"))
        assert done["state"] == "failed" and done["end_reason"] == "error", done
        assert str(wav) in done["error"] and "No such file or directory" in done["error"], done
    finally:
        own.stop()
