"""A bot is a tenant of the Daily proxy (``/daily/v1``): its own request quota
inside the account's, tokens that end with its session and are never an owner's.

The unit-level tests run the supervisor's HTTP app over a small stand-in daemon whose
sessions are plain objects, with the supervisor's real REST client talking to the
sandbox through ``RestWitness``, which counts what reached "Daily". The end-to-end test
starts the real supervisor with a Pipecat bot (``tests/bots/proxy_hammer.py``) that loops
on the proxy while other sessions start.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from supervisor.config import parse
from supervisor.daily_rest import DailyREST
from supervisor.http.app import make_app
from tests.conftest import DailyRest, SandboxProcess
from tests.doubles.http_daemon import BareDaemon, NoSessions
from tests.doubles.rest_witness import RestWitness
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

DAY_S = 24 * 3600


@dataclass
class StandInSession:
    """What the proxy reads of a live session: its key, room, deadline and actor."""

    room_name: str
    ends_by: float
    id: str = field(default_factory=lambda: f"s-{time.monotonic_ns()}")
    daily_key: str = field(default_factory=lambda: f"key-{time.monotonic_ns()}")
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.room = SimpleNamespace(name=self.room_name)
        self.dialin = None  # no phone call to put through
        self.task = asyncio.get_running_loop().create_task(self.ended.wait())  # the actor, until it ends


class StandInRegistry(NoSessions):
    def __init__(self) -> None:
        self.sessions: dict[str, StandInSession] = {}

    def by_daily_key(self, key: str) -> Any:  # a StandInSession: what the proxy reads of a session
        session = self.sessions.get(key)
        return session if session is not None and not session.task.done() else None


class StandInDaemon(BareDaemon):
    """Just enough daemon for the proxy: a registry, the config, the real REST client."""

    registry: StandInRegistry

    def __init__(self, rest: DailyREST, config: str) -> None:
        self.config = parse(config)
        self.rest = rest
        self.registry = StandInRegistry()


@dataclass
class Proxy:
    client: TestClient
    daemon: StandInDaemon
    witness: RestWitness
    sandbox_rest: DailyRest

    async def session(self, *, ends_in_s: float = 600) -> StandInSession:
        """A live session with a room of its own on the sandbox."""
        name = f"room-{time.monotonic_ns()}"
        await self.sandbox_rest.ok("POST", "/rooms", json={"name": name, "properties": {"exp": int(time.time()) + DAY_S}})
        session = StandInSession(name, time.time() + ends_in_s)
        self.daemon.registry.sessions[session.daily_key] = session
        return session

    async def call(self, session: StandInSession, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        resp = await self.client.request(method, f"/daily/v1{path}",
                                         headers={"Authorization": f"Bearer {session.daily_key}"}, **kwargs)
        return resp.status, await resp.json(content_type=None), resp.headers

    def reached_daily(self, method: str, path: str) -> int:
        return sum(1 for c in self.witness.calls if c.method == method and c.path == f"/v1{path}")


async def proxy_app(sandbox: Any, config: str, quotas: Any = None) -> AsyncIterator[Proxy]:
    """The app over the sandbox; ``quotas`` (a ``SessionQuotas``) replaces the config's."""
    witness = RestWitness(sandbox.base_url)
    await witness.start()
    async with aiohttp.ClientSession() as http:
        rest = DailyREST("test-key", http, api_url=witness.api_url, requests_per_second=50)
        daemon = StandInDaemon(rest, config)
        sandbox_rest = DailyRest(sandbox.api_url)
        app = make_app(daemon)
        if quotas is not None:
            from supervisor.http.daily_proxy import QUOTAS

            app[QUOTAS] = quotas
        try:
            async with TestClient(TestServer(app)) as client:
                yield Proxy(client, daemon, witness, sandbox_rest)
        finally:
            await sandbox_rest.close()
            await witness.close()


@pytest.fixture
async def proxy(sandbox: Any) -> AsyncIterator[Proxy]:
    """Quotas that do not refill within a test (one request per 100 s): every 429 is the burst spent."""
    async for p in proxy_app(sandbox, "[daily]\nproxy_requests_per_second = 0.01\n"):
        yield p


def token_exp(token: str) -> Any:
    """The ``exp`` claim of a JWT meeting token, read without its key."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]


# -- each session its own quota ------------------------------------------------------------------


async def test_a_session_past_its_burst_gets_429_in_dailys_shape_and_daily_never_sees_the_request(
    proxy: Proxy,
) -> None:
    session = await proxy.session()
    presence = f"/rooms/{session.room_name}/presence"
    answers = [await proxy.call(session, "GET", presence) for _ in range(8)]
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * 5 + [429] * 3, statuses  # the burst: five requests at once
    _, body, headers = answers[-1]
    assert body["error"] == "rate-limit-error" and "quota" in body["info"], body
    assert int(headers["Retry-After"]) >= 1  # the next token is ~100 s away at 0.01/s
    assert proxy.reached_daily("GET", presence) == 5  # the refused ones spent nothing of the account's


async def test_retry_after_says_when_the_sessions_next_request_is_answered(sandbox: Any) -> None:
    from supervisor.http.daily_proxy import SessionQuotas

    now = [1000.0]
    async for proxy in proxy_app(sandbox, "", SessionQuotas(2.0, clock=lambda: now[0])):  # 2 a second, by hand
        session = await proxy.session()
        presence = f"/rooms/{session.room_name}/presence"
        for _ in range(5):
            assert (await proxy.call(session, "GET", presence))[0] == 200
        status, _, headers = await proxy.call(session, "GET", presence)
        assert status == 429 and headers["Retry-After"] == "1"
        now[0] += float(headers["Retry-After"])  # at 2 a second, a second buys two requests
        assert [(await proxy.call(session, "GET", presence))[0] for _ in range(3)] == [200, 200, 429]


async def test_one_session_over_its_quota_leaves_another_sessions_requests_alone(proxy: Proxy) -> None:
    looping, other = await proxy.session(), await proxy.session()
    for _ in range(6):
        status, _, _ = await proxy.call(looping, "GET", f"/rooms/{looping.room_name}/presence")
    assert status == 429
    status, room, _ = await proxy.call(other, "GET", f"/rooms/{other.room_name}")
    assert status == 200 and room["name"] == other.room_name
    status, minted, _ = await proxy.call(other, "POST", "/meeting-tokens",
                                         json={"properties": {"room_name": other.room_name, "is_owner": False}})
    assert status == 200 and minted["token"]


async def test_a_sessions_quota_goes_when_the_session_ends(proxy: Proxy) -> None:
    from supervisor.http.daily_proxy import QUOTAS

    sessions = [await proxy.session() for _ in range(3)]
    for session in sessions:
        assert (await proxy.call(session, "GET", f"/rooms/{session.room_name}"))[0] == 200
    quotas = proxy.client.app[QUOTAS]
    assert len(quotas) == 3
    for session in sessions:
        session.ended.set()
        await session.task
    await wait_until(lambda: len(quotas) == 0, 5, "the ended sessions' buckets dropped")


# -- tokens end with the session and are never an owner's ---------------------------------------


async def test_a_token_minted_without_exp_expires_at_the_sessions_deadline(proxy: Proxy) -> None:
    session = await proxy.session(ends_in_s=300)
    status, minted, _ = await proxy.call(session, "POST", "/meeting-tokens",
                                         json={"properties": {"room_name": session.room_name, "user_name": "guest"}})
    assert status == 200, minted
    # What Daily itself says of the token, asked with the account's key.
    props = await proxy.sandbox_rest.ok("GET", f"/meeting-tokens/{minted['token']}")
    assert props["exp"] == int(session.ends_by) and props["user_name"] == "guest"


async def test_nothing_minted_or_changed_through_the_proxy_outlives_the_sessions_deadline(proxy: Proxy) -> None:
    session = await proxy.session(ends_in_s=300)
    far = int(time.time()) + 30 * DAY_S
    status, minted, _ = await proxy.call(session, "POST", "/meeting-tokens", json={
        "properties": {"room_name": session.room_name, "exp": far, "eject_at_token_exp": False}})
    assert status == 200, minted
    assert token_exp(minted["token"]) == int(session.ends_by)
    props = await proxy.sandbox_rest.ok("GET", f"/meeting-tokens/{minted['token']}")
    assert props["exp"] == int(session.ends_by)
    # An exp before the deadline is the bot's to choose, and kept.
    soon = int(time.time()) + 60
    status, minted, _ = await proxy.call(session, "POST", "/meeting-tokens",
                                         json={"properties": {"room_name": session.room_name, "exp": soon}})
    assert status == 200 and token_exp(minted["token"]) == soon
    # An exp that is not a time is not guessed at.
    status, body, _ = await proxy.call(session, "POST", "/meeting-tokens",
                                       json={"properties": {"room_name": session.room_name, "exp": "never"}})
    assert status == 400 and body["info"].startswith("properties.exp"), (status, body)
    # The room keeps the expiry its session gave it: no room update goes through.
    for change in ({"exp": far}, {"eject_at_room_exp": False}):
        status, body, _ = await proxy.call(session, "POST", f"/rooms/{session.room_name}", json={"properties": change})
        assert status == 403 and body["error"] == "forbidden-error", (change, status, body)
    assert proxy.reached_daily("POST", f"/rooms/{session.room_name}") == 0


async def test_an_owner_token_is_refused_with_403_naming_the_property(proxy: Proxy) -> None:
    session = await proxy.session()
    refused: list[tuple[dict[str, Any], str]] = [
        ({"is_owner": True}, "properties.is_owner"),
        ({"is_owner": "true"}, "properties.is_owner"),
        ({"permissions": {"canAdmin": ["participants"]}}, "properties.permissions.canAdmin"),
        ({"permissions": {"canAdmin": True}}, "properties.permissions.canAdmin"),
    ]
    for extra, named in refused:
        status, body, _ = await proxy.call(session, "POST", "/meeting-tokens", json={
            "properties": {"room_name": session.room_name, "exp": int(time.time()) + 60, **extra}})
        assert status == 403 and body["error"] == "forbidden-error", (extra, status, body)
        assert body["info"].startswith(named), body
    assert proxy.reached_daily("POST", "/meeting-tokens") == 0
    # Saying so is not asking for it: is_owner false is a participant's token.
    status, minted, _ = await proxy.call(session, "POST", "/meeting-tokens",
                                         json={"properties": {"room_name": session.room_name, "is_owner": False}})
    assert status == 200
    assert (await proxy.sandbox_rest.ok("GET", f"/meeting-tokens/{minted['token']}"))["is_owner"] is False


# -- end to end: a Pipecat bot looping on the proxy while other sessions start ----------------------

PROFILES = """
[profiles.echo]
kind = "echo"

[profiles.hammer]
kind = "pipecat"
bot = "tests/bots/proxy_hammer.py:bot"
"""
HAMMER_LINE = r"proxy-hammer {sid} answered ok=(\d+) limited=(\d+) other=(\d+)"
TOKEN_LINE = r"proxy-hammer {sid} token exp=(\d+) owner=(\d+|error)"


def hammer_counts(log: str, sid: str) -> tuple[int, int, int]:
    """The bot's latest tally of what the proxy answered its loop: (200s, 429s, others)."""
    found = re.findall(HAMMER_LINE.format(sid=re.escape(sid)), log)
    if not found:
        return 0, 0, 0
    ok, limited, other = found[-1]
    return int(ok), int(limited), int(other)


@pytest.mark.skipif(importlib.util.find_spec("pipecat") is None, reason="pipecat-ai is not installed (the pipecat extra)")
async def test_a_bot_looping_on_the_proxy_gets_429s_while_other_sessions_start(
    tmp_path: Path, sandbox_proc: SandboxProcess,
) -> None:
    witness = RestWitness(sandbox_proc.base_url)
    await witness.start()
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES)
    # The account's limit is low (5 a second) so that, without a quota of its own, the
    # hammering bot's queue of requests would stand between every other session and Daily.
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, supervisor={"profiles": str(profiles)},
                            pool={"min_idle": 2, "max_workers": 5},
                            daily={"api_url": witness.api_url, "requests_per_second": 5,
                                   "proxy_requests_per_second": 2})
    try:
        await asyncio.to_thread(sup.start, 60)
        status, started, _ = await sup.http("POST", "/start", json={"createDailyRoom": True, "profile": "hammer"})
        assert status == 200, started
        sid = started["sessionId"]
        hammered = f"/v1/rooms/{started['dailyRoom'].rsplit('/', 1)[1]}/presence"
        joined = await sup.wait_session(sid, lambda d: d["state"] == "joined", timeout=30)
        await wait_until(lambda: hammer_counts(sup.log_path.read_text(), sid)[1] > 0, 20,
                       "the looping bot answered 429")
        # Others start while it loops: their rooms and tokens are not starved.
        others = [await sup.start_bot("echo") for _ in range(3)]
        for other in others:
            done = await sup.wait_session(other["session_id"], lambda d: d["state"] in ("joined", "failed", "ended"),
                                          timeout=30)
            assert done["state"] == "joined", done
        # Its quota still refills at its rate: it is held to 2 a second, not shut out.
        await wait_until(lambda: hammer_counts(sup.log_path.read_text(), sid)[0] >= 8, 20, "8 answers to the loop")
        log = sup.log_path.read_text()
        ok, limited, other_statuses = hammer_counts(log, sid)
        assert limited > ok > 0 and other_statuses == 0, (ok, limited, other_statuses)
        # What reached Daily of the loop never outran the session's bucket: 5 at once, then 2 a second.
        arrivals = [c.at for c in witness.calls if c.method == "GET" and c.path == hammered]
        span = arrivals[-1] - arrivals[0]
        assert len(arrivals) <= 5 + 2 * span + 2, (len(arrivals), span)
        assert "over its Daily proxy quota" in log and sid in log
        # The token it asked for a month ends with the session, and it got no owner's. It
        # asked as its transport joined, so the deadline it met may still be the one set at
        # the start: the start and join timeouts (15 s each here) plus max_duration_s.
        [(exp, owner)] = re.findall(TOKEN_LINE.format(sid=re.escape(sid)), log)
        assert int(exp) <= joined["requested_at"] + 15 + 15 + joined["max_duration_s"], (exp, joined)
        assert owner == "403", owner
        for s in (sid, *(o["session_id"] for o in others)):
            await sup.http("DELETE", f"/sessions/{s}")
    finally:
        await asyncio.to_thread(sup.stop)
        await witness.close()
