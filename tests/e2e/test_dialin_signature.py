"""Dial-in webhooks signed as Daily signs them.

With ``[dialin] hmac_secret_env``, ``POST /dialin`` takes only calls carrying Daily's
pinless signature (``reference/daily.md``): ``X-Pinless-Timestamp`` and
``X-Pinless-Signature`` = base64(HMAC-SHA256(base64-decoded secret, f"{ts}.{raw body}")).
It then needs no bearer key; a missing, malformed, wrong, stale or replayed signature is a
401 that starts nothing. The sandbox, given the same secret, signs its dial-in webhooks.

The signatures the tests make come from ``sign`` below, written from the reference, not
from callfleet's code, so a verifier and a sandbox that agreed on a wrong formula would fail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from supervisor.config import DialinSection, parse
from supervisor.http.app import make_app
from supervisor.http.dialin_signature import SignatureError, Verifier, secret_from
from supervisor.profiles import parse as parse_profiles
from tests.conftest import REPO, DailyRest, SandboxProcess, free_port
from tests.doubles.http_daemon import BareDaemon
from tests.e2e.test_deploy import rendered_config, resource, supervisor_container
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

SECRET = base64.b64encode(secrets.token_bytes(32)).decode()  # as Daily's pinless `hmac`
OTHER_SECRET = base64.b64encode(secrets.token_bytes(32)).decode()
SECRET_ENV = "CALLFLEET_TEST_PINLESS_HMAC"
KEY_ENV = "CALLFLEET_TEST_API_KEY"
API_KEY = secrets.token_hex(16)
NOW = 1_767_225_600
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def sign(secret_b64: str, timestamp: str, body: bytes) -> str:
    """Daily's ``X-Pinless-Signature`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(base64.b64decode(secret_b64), timestamp.encode() + b"." + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signed(body: bytes, timestamp: int, secret_b64: str = SECRET) -> dict[str, str]:
    ts = str(timestamp)
    return {"Content-Type": "application/json", "X-Pinless-Timestamp": ts,
            "X-Pinless-Signature": sign(secret_b64, ts, body)}


# -- the verifier ---------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock | None = None, max_skew_s: float = 300) -> Verifier:
    return Verifier(base64.b64decode(SECRET), max_skew_s, clock or Clock())


BODY = json.dumps({"From": "+15550100", "To": "+15550199", "callId": "c1", "callDomain": "d1"}).encode()


def refusal(check: Verifier, timestamp: str | None, signature: str | None, body: bytes = BODY) -> str:
    with pytest.raises(SignatureError) as caught:
        check.verify(timestamp, signature, body)
    return str(caught.value)


def test_a_webhook_signed_with_the_secret_is_accepted() -> None:
    verifier().verify(str(NOW), sign(SECRET, str(NOW), BODY), BODY)


def test_a_webhook_signed_with_another_secret_is_refused() -> None:
    info = refusal(verifier(), str(NOW), sign(OTHER_SECRET, str(NOW), BODY))
    assert "does not match" in info


def test_a_webhook_whose_body_was_changed_after_signing_is_refused() -> None:
    tampered = BODY.replace(b"+15550100", b"+15550666")
    info = refusal(verifier(), str(NOW), sign(SECRET, str(NOW), BODY), tampered)
    assert "does not match" in info


def test_a_signature_moved_to_another_timestamp_is_refused() -> None:
    info = refusal(verifier(), str(NOW + 1), sign(SECRET, str(NOW), BODY))
    assert "does not match" in info


def test_a_webhook_without_signature_or_timestamp_is_refused_naming_what_is_missing() -> None:
    check = verifier()
    assert "X-Pinless-Signature missing" in refusal(check, str(NOW), None)
    assert "X-Pinless-Timestamp missing" in refusal(check, None, sign(SECRET, str(NOW), BODY))
    assert "X-Pinless-Timestamp and X-Pinless-Signature missing" in refusal(check, None, None)
    assert "missing" in refusal(check, "", "")


def test_a_signature_that_is_not_base64_of_a_sha256_is_refused() -> None:
    check = verifier()
    good = sign(SECRET, str(NOW), BODY)
    assert "not base64" in refusal(check, str(NOW), "not base64 at all!")
    assert "not base64" in refusal(check, str(NOW), good[:-2])  # padding cut
    short = base64.b64encode(base64.b64decode(good)[:16]).decode()
    assert "not an HMAC-SHA256" in refusal(check, str(NOW), short)


def test_a_timestamp_that_is_not_unix_seconds_is_refused_even_when_signed() -> None:
    check = verifier()
    for ts in (f" {NOW}", f"+{NOW}", f"{NOW}.0", "1_767_225_600", "-1", "tomorrow"):
        assert "not Unix seconds" in refusal(check, ts, sign(SECRET, ts, BODY)), ts


def test_a_timestamp_older_than_max_skew_is_refused_as_stale() -> None:
    clock = Clock()
    check = verifier(clock, max_skew_s=300)
    ts = str(NOW - 301)
    info = refusal(check, ts, sign(SECRET, ts, BODY))
    assert "301 s old" in info and "max_skew_s" in info
    ts = str(NOW - 300)
    check.verify(ts, sign(SECRET, ts, BODY), BODY)  # at the limit: still fresh


def test_a_timestamp_ahead_of_the_clock_by_more_than_max_skew_is_refused() -> None:
    check = verifier(max_skew_s=300)
    ts = str(NOW + 301)
    assert "ahead of this server's clock" in refusal(check, ts, sign(SECRET, ts, BODY))


def test_a_replayed_signature_is_refused_even_spelled_another_way() -> None:
    check = verifier()
    good = sign(SECRET, str(NOW), BODY)
    check.verify(str(NOW), good, BODY)
    assert "already used" in refusal(check, str(NOW), good)
    # Base64 leaves two bits of a 32-byte digest unused: flipping one spells the same digest.
    respelled = good[:42] + B64[B64.index(good[42]) ^ 1] + good[43:]
    assert respelled != good and base64.b64decode(respelled) == base64.b64decode(good)
    assert "already used" in refusal(check, str(NOW), respelled)


def test_a_refused_signature_is_not_remembered_so_the_real_webhook_still_passes() -> None:
    check = verifier()
    ts = str(NOW)
    refusal(check, ts, sign(SECRET, ts, BODY), BODY + b" ")  # a forgery of another body
    check.verify(ts, sign(SECRET, ts, BODY), BODY)


def test_accepted_signatures_are_forgotten_once_their_timestamp_is_stale() -> None:
    clock = Clock()
    check = verifier(clock, max_skew_s=60)
    for i in range(5):
        body = BODY + b" " * i
        check.verify(str(NOW), sign(SECRET, str(NOW), body), body)
    assert check.remembered == 5
    clock.now = NOW + 61
    ts = str(NOW + 61)
    check.verify(ts, sign(SECRET, ts, BODY), BODY)
    assert check.remembered == 1  # the stale five were dropped: memory follows the window
    assert "61 s old" in refusal(check, str(NOW), sign(SECRET, str(NOW), BODY))  # refused as old, not replayed


def test_the_secret_must_be_set_and_base64_and_its_error_names_the_config_key() -> None:
    section = DialinSection(hmac_secret_env=SECRET_ENV)
    assert secret_from(DialinSection(), {}) is None
    assert secret_from(section, {SECRET_ENV: SECRET + "\n"}) == base64.b64decode(SECRET)
    for environ in ({}, {SECRET_ENV: ""}, {SECRET_ENV: "not base64!"}):
        with pytest.raises(ValueError, match=f"dialin.hmac_secret_env: \\${SECRET_ENV}"):
            secret_from(section, environ)


# -- the middleware, over the app -----------------------------------------------------------------


class SigningDaemon(BareDaemon):
    """Just enough daemon for /dialin's ping and the bearer check."""

    config = parse(f'[supervisor]\napi_key_env = "{KEY_ENV}"\n[dialin]\nhmac_secret_env = "{SECRET_ENV}"\n')
    profiles = parse_profiles('[profiles.echo]\nkind = "echo"\n')
    environ = {KEY_ENV: API_KEY, SECRET_ENV: SECRET}
    cluster = None  # one node: replays are refused by this node's memory alone


async def test_with_a_secret_a_signed_ping_needs_no_bearer_key_and_the_bearer_key_replaces_no_signature() -> None:
    ping = json.dumps({"test": "ping"}).encode()
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    async with TestClient(TestServer(make_app(SigningDaemon()))) as client:
        resp = await client.post("/dialin", data=ping, headers=signed(ping, int(time.time())))
        assert resp.status == 200 and await resp.json() == {"status": "OK"}
        resp = await client.post("/dialin", data=ping, headers={"Content-Type": "application/json", **bearer})
        assert resp.status == 401
        body = await resp.json()
        assert body["error"] == "authentication-error" and "X-Pinless" in body["info"]
        # Every other route still wants the bearer key, signed or not.
        resp = await client.get("/sessions", headers=signed(b"", int(time.time())))
        assert resp.status == 401 and "bearer" in (await resp.json())["info"]


# -- end to end: the real supervisor and sandbox --------------------------------------------------


@dataclass
class Capture:
    """A stand-in ``room_creation_api`` that keeps what Daily (the sandbox) posted to it."""

    url: str = ""
    hooks: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hooks.append((dict(request.headers), await request.read()))
        return web.json_response({"status": "OK"})

    async def received(self) -> list[tuple[dict[str, str], bytes]]:
        """The webhooks posted so far, once at least one has arrived."""
        return await wait_until(lambda: list(self.hooks), what="the sandbox's webhook")


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    found = Capture()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


@dataclass
class Fleet:
    sup: SupervisorProcess
    sandbox: DailyRest

    async def http(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {API_KEY}", **kwargs.pop("headers", {})}
        return await self.sup.http(method, path, headers=headers, **kwargs)

    async def sessions(self) -> list[dict[str, Any]]:
        status, listing, _ = await self.http("GET", "/sessions")
        assert status == 200, listing
        return list(listing["data"])

    async def rooms_created(self) -> int:
        return int((await self.sandbox.ok("GET", "/sandbox/stats"))["rooms_created"])

    async def ring(self, webhook_url: str, caller: str = "+15550100") -> dict[str, Any]:
        """A phone call reaches Daily: the sandbox posts the signed webhook to ``webhook_url``."""
        return dict(await self.sandbox.ok("POST", "/sandbox/dialin", json={
            "webhook_url": webhook_url, "From": caller, "To": "+15550199"}))


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    """A supervisor with a bearer key and ``[dialin] hmac_secret_env``, and its embedded sandbox."""
    sup = SupervisorProcess(tmp_path, None, env={KEY_ENV: API_KEY, SECRET_ENV: SECRET},
                            supervisor={"api_key_env": KEY_ENV}, dialin={"hmac_secret_env": SECRET_ENV})
    await asyncio.to_thread(sup.start)
    sandbox = DailyRest(f"http://127.0.0.1:{sup.config['sandbox']['port']}/v1")
    try:
        yield Fleet(sup, sandbox)
    finally:
        await sandbox.close()
        await asyncio.to_thread(sup.stop)


async def test_a_signed_sandbox_dialin_starts_the_session_and_the_phone_joins_without_a_bearer_key(
    fleet: Fleet,
) -> None:
    call = await fleet.ring(f"{fleet.sup.url}/dialin")  # the sandbox sends no Authorization header
    sessions = await wait_until(fleet.sessions, until=lambda found: any(
        len(s["participants"]) >= 2 for s in found if s["profile"] == "echo"), what="the phone in the session")
    [session] = sessions
    room = session["room_url"].rsplit("/", 1)[1]
    people = await wait_until(lambda: fleet.sandbox.ok("GET", f"/sandbox/rooms/{room}/participants"),
                              until=lambda got: any(p["kind"] == "dialin" and p["loud_frames_heard"] > 20
                                              for p in got["data"]), what="the phone hearing the echo bot")
    phone = next(p for p in people["data"] if p["kind"] == "dialin")
    assert phone["number"] == "+15550100" and call["callId"]
    # The HTTP API itself still wants the bearer key.
    status, reply, _ = await fleet.sup.http("GET", "/sessions")
    assert status == 401 and reply["error"] == "authentication-error"
    await fleet.sandbox.ok("POST", "/sandbox/hangup", json={"room": room, "participant_id": phone["id"]})
    done = await wait_until(lambda: fleet.http("GET", f"/sessions/{session['session_id']}"),
                            until=lambda got: got[1]["state"] == "ended", what="the session's end")
    assert done[1]["end_reason"] == "participant_left"


async def test_forged_stale_and_replayed_webhooks_are_401_and_start_nothing(fleet: Fleet, capture: Capture) -> None:
    # Daily's real webhook for a call waiting in the sandbox, caught on its way.
    await fleet.ring(capture.url)
    [(headers, body)] = await capture.received()
    ts, signature = headers["X-Pinless-Timestamp"], headers["X-Pinless-Signature"]
    assert abs(int(ts) - time.time()) < 60 and signature == sign(SECRET, ts, body)  # Daily's scheme, Daily's clock
    rooms_before = await fleet.rooms_created()
    now = int(time.time())
    forged = body.replace(b"+15550100", b"+15550666")
    attempts = {
        "missing": ({}, body),
        "malformed": ({"X-Pinless-Timestamp": ts, "X-Pinless-Signature": "%%%"}, body),
        "another secret": (signed(body, now, OTHER_SECRET), body),
        "body tampered": ({"X-Pinless-Timestamp": ts, "X-Pinless-Signature": signature}, forged),
        "stale": (signed(body, now - 3600), body),
        "from the future": (signed(body, now + 3600), body),
        "bearer instead": ({"Authorization": f"Bearer {API_KEY}"}, body),
    }
    for what, (extra, raw) in attempts.items():
        status, reply, _ = await fleet.sup.http("POST", "/dialin", data=raw,
                                                headers={"Content-Type": "application/json", **extra})
        assert status == 401 and reply["error"] == "authentication-error", (what, status, reply)
    assert await fleet.sessions() == []
    # The genuine webhook starts its one session; the same bytes again are a replay.
    status, reply, _ = await fleet.sup.http("POST", "/dialin", data=body,
                                            headers={"Content-Type": "application/json", **{
                                                k: headers[k] for k in ("X-Pinless-Timestamp", "X-Pinless-Signature")}})
    assert status == 200 and reply["session_id"], reply
    status, replayed, _ = await fleet.sup.http("POST", "/dialin", data=body,
                                               headers={"Content-Type": "application/json", **{
                                                   k: headers[k] for k in ("X-Pinless-Timestamp", "X-Pinless-Signature")}})
    assert status == 401 and "already used" in replayed["info"], replayed
    assert [s["session_id"] for s in await fleet.sessions()] == [reply["session_id"]]
    assert await fleet.rooms_created() == rooms_before + 1  # the genuine call's room, and no other


def supervisor_exit(tmp_path: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir()
    sup = SupervisorProcess(tmp_path, None, dialin={"hmac_secret_env": SECRET_ENV})
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV} | environ
    return subprocess.run([sys.executable, "-m", "cli", "supervisor", "--config", str(sup.config_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_a_supervisor_whose_dialin_secret_is_unset_or_not_base64_does_not_start(tmp_path: Path) -> None:
    unset = supervisor_exit(tmp_path / "unset", {})
    assert unset.returncode == 1, unset.stderr[-2000:]
    assert f"dialin.hmac_secret_env: ${SECRET_ENV} is not set" in unset.stderr
    garbled = supervisor_exit(tmp_path / "garbled", {SECRET_ENV: "not base64!"})
    assert garbled.returncode == 1, garbled.stderr[-2000:]
    assert f"dialin.hmac_secret_env: ${SECRET_ENV} is not base64" in garbled.stderr
    assert "not base64!" not in garbled.stderr  # the value itself is never printed


async def test_callfleet_sandbox_signs_its_dialin_webhooks_only_when_given_a_secret(
    capture: Capture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    for extra, signs in (((), False), (("--dialin-hmac-secret-env", SECRET_ENV), True)):
        proc = SandboxProcess("--no-rate-limits", *extra)
        rest = DailyRest(proc.api_url)
        try:
            capture.hooks.clear()
            await rest.ok("POST", "/sandbox/dialin", json={"webhook_url": capture.url, "From": "+1555", "To": "+1556"})
            [(headers, body)] = await capture.received()
        finally:
            await rest.close()
            proc.stop()
        assert json.loads(body)["From"] == "+1555"
        if signs:
            ts = headers["X-Pinless-Timestamp"]
            assert headers["X-Pinless-Signature"] == sign(SECRET, ts, body)
        else:
            assert "X-Pinless-Signature" not in headers and "X-Pinless-Timestamp" not in headers
    monkeypatch.delenv(SECRET_ENV)
    refused = subprocess.run([sys.executable, "-m", "cli", "sandbox", "--port", str(free_port()),
                              "--dialin-hmac-secret-env", SECRET_ENV], cwd=REPO, capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode == 2 and f"--dialin-hmac-secret-env: ${SECRET_ENV} is not set" in refused.stdout


def command_lines(pids: list[int]) -> list[list[bytes]]:
    """What ``ps`` shows of each process."""
    return [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in pids]


async def test_the_secret_reaches_the_embedded_sandbox_in_its_environment_not_its_command_line(fleet: Fleet) -> None:
    [sandbox] = [argv for argv in command_lines(fleet.sup.descendants()) if argv[2:4] == [b"cli", b"sandbox"]]
    assert b"--dialin-hmac-secret-env" in sandbox  # it signs (the end-to-end tests show it does, and how)
    assert not any(SECRET.encode() in arg for argv in command_lines(fleet.sup.descendants()) for arg in argv)


def test_the_shipped_kubernetes_config_verifies_dialin_webhooks_with_a_secret_from_the_secret() -> None:
    name = rendered_config().dialin.hmac_secret_env
    assert name, "the ConfigMap leaves /dialin behind the bearer key, which Daily cannot send"
    env = {e["name"]: e for e in supervisor_container()["env"]}
    ref = env[name]["valueFrom"]["secretKeyRef"]
    secret = resource("Secret", "callfleet-keys")
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert not ref.get("optional")  # a Secret without it stops the pod at once, not the first call
    assert secret["stringData"][ref["key"]].startswith("REPLACE-")  # the example holds placeholders only
