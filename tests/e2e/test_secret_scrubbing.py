"""No secret in any record (issue 16 item 4).

Every key the supervisor or a request supplied is scrubbed from error text, stored
records, events, Redis and logs; the API shows a one-line error and the traceback goes to
the log, scrubbed.

End to end, on a real supervisor with real workers and Pipecat: a provider that answers
401 quoting the request's key (the OpenAI-compatible stand-in, as OpenAI does); a
``google_tts`` key that is not JSON credentials; hosted bots that log and raise with their
token, their Daily proxy key, their profile's secret and their request's key
(``tests/bots/leaky.py``). Then the pieces: the scrubber, the log processors (called
directly, and through a configured logger in a process of its own), the operator's secrets
the supervisor registers, and the session view a cluster publishes to Redis.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import pytest

from callfleet import logs, scrub
from callfleet.scrub import MARKER
from sandbox.caller import Caller, CallerOptions
from supervisor import operator_secrets
from supervisor.config import parse
from supervisor.profiles import parse as parse_profiles
from supervisor.sessions.requests import BotsStart, RequestSecrets
from supervisor.sessions.services import Services
from supervisor.sessions.session import Session
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.view import describe_record
from supervisor.store import SessionRecord, Store
from tests.conftest import REPO
from tests.doubles.openai_server import FakeOpenAI
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

needs_pipecat = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                   reason="pipecat-ai is not installed (the pipecat extra)")

PROFILE_SECRET = "profile-secret-" + secrets.token_urlsafe(16)
PROFILES = """
[profiles.voice_2024_10]
kind = "pipecat"
bot = "worker.daily_bots.voice:bot"

[profiles.leaks_at_once]
kind = "pipecat"
bot = "tests/bots/leaky.py:bot_leaks_at_once"
secrets = ["LEAKY_SECRET"]

[profiles.leaks_in_call]
kind = "pipecat"
bot = "tests/bots/leaky.py:bot_leaks_in_call"
secrets = ["LEAKY_SECRET"]
"""
BRACKETED = re.compile(r"(\w+)<([^<>]*)>")  # what tests/bots/leaky.py quotes: name<value>


def bracketed(text: str) -> dict[str, str]:
    return dict(BRACKETED.findall(text))


def finished(view: dict[str, Any]) -> bool:
    return view["state"] in ("ended", "failed")


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    if importlib.util.find_spec("pipecat") is None:
        pytest.skip("pipecat-ai is not installed (the pipecat extra)")
    tmp = tmp_path_factory.mktemp("scrubbing")
    profiles = tmp / "profiles.toml"
    profiles.write_text(PROFILES)
    proc = SupervisorProcess(tmp, None, env={"LEAKY_SECRET": PROFILE_SECRET},
                             supervisor={"profiles": str(profiles)},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
async def events(sup: SupervisorProcess) -> AsyncIterator[subprocess.Popen[str]]:
    """``callfleet ctl events`` following the supervisor's PUB feed."""
    follower = subprocess.Popen([sys.executable, "-m", "cli", "ctl", "--config", str(sup.config_path),
                                 "events"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    await sup.followed()
    yield follower
    if follower.poll() is None:
        follower.terminate()
        follower.communicate(timeout=10)


def rtvi_errors(caller: Caller) -> list[str]:
    return [str(m.get("data", {}).get("error")) for m, _ in caller.app_messages
            if isinstance(m, dict) and m.get("label") == "rtvi-ai" and m.get("type") == "error"]


def stored_text(sup: SupervisorProcess, session_id: str) -> str:
    record = sup.stored(session_id)
    assert record is not None
    return json.dumps(msgspec.to_builtins(record))


@needs_pipecat
async def test_a_key_a_provider_quotes_back_reaches_no_log_record_view_event_or_participant(
        sup: SupervisorProcess, events: subprocess.Popen[str]) -> None:
    # 40 hex digits, as Deepgram's keys are: no shape gives it away (Pipecat masks an ``sk-``
    # key by its prefix itself), so only the scrubber's registry can catch it.
    key = secrets.token_hex(20)
    provider = FakeOpenAI(accept_key=secrets.token_hex(20))  # not the request's: 401
    await provider.start()
    try:
        bot = await sup.start_bot(
            "voice_2024_10",
            services={"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
            config=[{"service": "llm", "options": [
                {"name": "initial_messages", "value": [{"role": "user", "content": "Say hello."}]}]}],
            service_options={"custom_llm": {"base_url": provider.base_url, "api_key": key},
                             "openai_tts": {"base_url": provider.base_url, "api_key": key}})
        sid = bot["session_id"]
        caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
        await caller.join()  # the bot greets its first participant: a chat completion, refused
        try:
            await wait_until(lambda: key in provider.refused, 30, "the provider refusing the request's key")
            await wait_until(lambda: "Incorrect API key provided" in sup.log_path.read_text(), 15,
                           "the provider's error in the log")
            # Pipecat tells the call's participants (a browser) about the error too: RTVI's "error"
            await wait_until(lambda: rtvi_errors(caller), 15, "the RTVI error message")
            assert key not in json.dumps([m for m, _ in caller.app_messages])
            assert any("Incorrect API key provided: " + MARKER in e for e in rtvi_errors(caller))
        finally:
            await caller.conn.leave()
        status, _, _ = await sup.http("DELETE", f"/sessions/{sid}")
        assert status == 200
        view = await sup.wait_session(sid, finished)
    finally:
        await provider.stop()
    status, listed, _ = await sup.http("GET", "/sessions")
    assert status == 200
    events.terminate()
    feed, _ = events.communicate(timeout=10)
    log = sup.log_path.read_text()
    assert "Incorrect API key provided: " + MARKER in log  # the provider's words reached the log, scrubbed
    assert key not in log
    assert key not in json.dumps(view) and key not in json.dumps(listed)
    assert key not in stored_text(sup, sid)
    assert sid in feed and key not in feed


async def test_a_google_tts_key_that_is_not_json_credentials_is_a_422_that_does_not_quote_it(
        sup: SupervisorProcess) -> None:
    key = "/run/secrets/" + secrets.token_urlsafe(24)  # a path: never to be opened for a request
    status, reply, _ = await sup.http("POST", "/bots/start", json={
        "bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm", "tts": "google_tts"},
        "service_options": {"custom_llm": {"base_url": "http://127.0.0.1:9/v1", "api_key": "custom-" + "k" * 20},
                            "google_tts": {"api_key": key}}})
    assert status == 422, (status, reply)
    assert reply["error"] == "invalid-request-error" and "service_options.google_tts.api_key" in reply["info"]
    assert key not in json.dumps(reply)
    assert key not in sup.log_path.read_text()


@needs_pipecat
@pytest.mark.parametrize(("profile", "where"), [("leaks_at_once", "failed before joining"),
                                                ("leaks_in_call", "failed in the call")])
async def test_a_bot_that_raises_with_its_secrets_leaves_one_scrubbed_line_and_a_scrubbed_traceback_in_the_log(
        sup: SupervisorProcess, profile: str, where: str) -> None:
    byo = "byo-" + secrets.token_urlsafe(24)
    status, started, _ = await sup.http("POST", "/start", json={"createDailyRoom": True, "profile": profile,
                                                                "body": {"openai_api_key": byo}})
    assert status == 200, (status, started)
    sid = started["sessionId"]
    view = await sup.wait_session(sid, finished, timeout=40)
    assert (view["state"], view["end_reason"]) == ("failed", "bot_error"), view
    scrubbed = {"token": MARKER, "proxy_key": MARKER, "profile_secret": MARKER, "byo_key": MARKER}

    error = view["error"]
    assert "\n" not in error and "Traceback" not in error, error
    assert "LeakError" in error and where in error, error
    assert bracketed(error) == scrubbed, error
    status, listed, _ = await sup.http("GET", "/sessions")
    assert [s["error"] for s in listed["data"] if s["session_id"] == sid] == [error]
    stored = sup.stored(sid)
    assert stored is not None and stored.error == error
    assert stored.extra["body"]["openai_api_key"] == MARKER  # the request's body, as kept
    assert byo not in stored_text(sup, sid)

    log = sup.log_path.read_text()
    assert byo not in log and PROFILE_SECRET not in log
    mine = [json.loads(line) for line in log.splitlines() if sid in line and line.startswith("{")]
    [raised] = [e for e in mine if e["event"] == "bot raised"]
    assert "Traceback" in raised["traceback"] and "LeakError" in raised["traceback"]  # the whole of it, in the log
    assert bracketed(raised["traceback"]) == scrubbed
    [said] = [e for e in mine if e["event"].startswith("leaky bot")]  # the bot's own loguru line
    assert bracketed(said["event"]) == scrubbed


# -- the scrubber ------------------------------------------------------------------------------


def test_a_registered_secret_is_masked_as_given_and_as_escaped_into_json_a_repr_or_a_url() -> None:
    registry = scrub.Secrets()
    key = 'k3y-"with\\quotes/and+slashes'
    registry.register(key)
    for text in (f"said {key}", json.dumps({"error": f"bad key {key}"}), repr(ValueError(key)),
                 json.dumps(json.dumps({"m": key})), "https://x.example/?k=" + quote(key, safe="")):
        assert key not in registry.scrub(text) and MARKER in registry.scrub(text), text
        assert "quotes/and" not in registry.scrub(text), text


def test_a_secret_two_holders_registered_stays_masked_until_both_forget_it() -> None:
    registry = scrub.Secrets()
    first = registry.register("shared-key-123456")
    second = registry.register("shared-key-123456")
    registry.forget(first)
    assert registry.scrub("shared-key-123456") == MARKER
    registry.forget(second)
    assert registry.scrub("shared-key-123456") == "shared-key-123456" and len(registry) == 0


def test_short_and_empty_values_are_never_registered_so_ordinary_words_stay() -> None:
    registry = scrub.Secrets()
    assert registry.register("", None, "json", "sandbox") == ()
    assert registry.scrub("the sandbox speaks json") == "the sandbox speaks json"


def test_credential_shaped_strings_are_masked_without_being_registered() -> None:
    registry = scrub.Secrets()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyIjoicm9vbSJ9.c2lnbmF0dXJl"
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    samples = {
        "Authorization: Bearer abcdefgh12345678": "Authorization: Bearer " + MARKER,
        f"joined with {jwt}": f"joined with {MARKER}",
        "GET /v1?api_key=abcd1234efgh&x=1": f"GET /v1?api_key={MARKER}&x=1",
        '{"client_secret": "s3cr3t-value"}': '{"client_secret": "' + MARKER + '"}',
        "Incorrect API key provided: sk-ant-abcdefghijklmnopqrstu.": f"Incorrect API key provided: {MARKER}.",
        "key AIzaSyA1234567890abcdefghijklmnopqrstuv": f"key {MARKER}",
        f"creds {json.dumps(pem)}": f"creds \"{MARKER}\"",
    }
    for text, expected in samples.items():
        assert registry.scrub(text) == expected, text
    ordinary = "session 1f0c joined room cf-abc; max_tokens=64; the token expired; task-sk-1"
    assert registry.scrub(ordinary) == ordinary


def test_the_secrets_inside_json_credentials_are_masked_on_their_own() -> None:
    registry = scrub.Secrets()
    private_key = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nAAAAbbbbCCCC\n"  # no PEM armour: only the registry knows it
    registry.register(json.dumps({"type": "service_account", "private_key": private_key, "client_email": "a@b.c"}))
    assert registry.scrub(f"cannot load {private_key!r}") == f"cannot load '{MARKER}'"


def test_what_a_calls_participants_read_loses_only_the_registered_secrets() -> None:
    registry = scrub.Secrets()
    registry.register("session-key-" + "k" * 12)
    said = {"label": "rtvi-ai", "type": "error",
            "data": {"error": "refused session-key-kkkkkkkkkkkk", "said": ["my password: hunter22", 3]}}
    assert registry.without_known(said) == {"label": "rtvi-ai", "type": "error",
                                            "data": {"error": f"refused {MARKER}", "said": ["my password: hunter22", 3]}}


def test_secrets_in_finds_a_requests_keys_under_secret_names_at_any_depth() -> None:
    body = {"service_options": {"openai": {"api_key": "sk-1", "model": "m"}},
            "nested": [{"DEEPGRAM_API_KEY": "dg-1", "token": "t-1"}], "key_env": "NOT_A_VALUE", "room": "r"}
    assert sorted(scrub.secrets_in(body)) == ["dg-1", "sk-1", "t-1"]
    flood = {f"k{i}_api_key": f"value-{i:06d}" for i in range(10_000)}  # cannot slow every later log line
    assert len(scrub.secrets_in(flood)) == scrub.MAX_FOUND


def test_one_line_keeps_a_tracebacks_exception_line_scrubbed_and_bounded() -> None:
    scrub.register(held := "leaked-" + secrets.token_urlsafe(16))
    try:
        trace = ("bot() raised before joining:\nTraceback (most recent call last):\n  File \"bot.py\", line 3\n"
                 f"    raise LeakError(key)\nLeakError: refused {held}\n")
        assert scrub.one_line(trace) == f"bot() raised before joining: LeakError: refused {MARKER}"
        assert scrub.one_line(f"first line {held}\nsecond line") == f"first line {MARKER}"
        assert scrub.exception_line(ValueError(f"bad {held}\nmore")) == f"ValueError: bad {MARKER}"
        assert len(scrub.one_line("x" * 5000) or "") == scrub.MAX_ERROR_CHARS
        assert scrub.one_line(None) is None
    finally:
        scrub.forget([held])


# -- the log processors ---------------------------------------------------------------------------


def test_the_log_processors_mask_secret_fields_and_scrub_the_rendered_line() -> None:
    held = scrub.register("operator-key-" + secrets.token_urlsafe(16))
    try:
        event = logs.redact_secrets(None, "info", {"event": f"using {held[0]}", "api_key": "x", "nested": {"token": "y"}})
        assert event["api_key"] == MARKER and event["nested"] == {"token": MARKER}
        line = logs.scrub_line(None, "info", json.dumps(event, default=repr))
        assert held[0] not in line and f"using {MARKER}" in line
    finally:
        scrub.forget(held)


def test_a_configured_logger_writes_no_registered_secret_whatever_carries_it(tmp_path: Path) -> None:
    # configure() is once per process: the logger under test gets a process of its own.
    key = "provider-key-" + secrets.token_urlsafe(16)
    script = textwrap.dedent(f"""
        import logging, structlog
        from loguru import logger as loguru_logger
        from callfleet import logs, scrub
        from worker.bot_runner import route_loguru
        logs.configure(json=True)
        scrub.register({key!r})
        log = structlog.get_logger("t")
        log.info("message {key}", error=ValueError({key!r}))
        try:
            raise RuntimeError("refused {key}")
        except RuntimeError:
            log.exception("raised")
        logging.getLogger("aiohttp").warning("stdlib %s", {key!r})
        route_loguru()
        loguru_logger.error("pipecat says {key}")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in lines] == [f"message {MARKER}", "raised", f"stdlib {MARKER}", f"pipecat says {MARKER}"]
    assert "Traceback" in lines[1]["exception"]
    assert key not in done.stderr


# -- what the supervisor registers and publishes ------------------------------------------------------


def test_the_supervisor_registers_every_env_setting_provider_key_profile_secret_and_redis_password() -> None:
    config = parse(textwrap.dedent("""
        [supervisor]
        api_key_env = "BEARER"
        [cluster]
        redis_url = "rediss://:redis-password-1@redis.local:6380/0"
        node_secret_env = "NODE_SECRET"
        [dialin]
        hmac_secret_env = "DIALIN_HMAC"
    """))
    profiles = parse_profiles('[profiles.p]\nkind = "pipecat"\nbot = "b.py:bot"\nsecrets = ["MY_SECRET"]\n')
    environ = {"BEARER": "bearer-value-1", "DAILY_API_KEY": "daily-value-1", "NODE_SECRET": "node-value-1",
               "DIALIN_HMAC": "aG1hYy12YWx1ZS0x\n", "OPENAI_API_KEY": "openai-value-1", "MY_SECRET": "mine-value-1",
               "HOME": "/home/operator-home", "UNNAMED": "not-a-secret-1"}
    held = operator_secrets.register(config, profiles.profiles.values(), environ)
    try:
        assert sorted(held) == sorted(["bearer-value-1", "daily-value-1", "node-value-1", "aG1hYy12YWx1ZS0x",
                                       "openai-value-1", "mine-value-1", "redis-password-1"])
        assert scrub.scrub("HOME=/home/operator-home UNNAMED=not-a-secret-1") == \
            "HOME=/home/operator-home UNNAMED=not-a-secret-1"
    finally:
        scrub.forget(held)


class HeldREST:
    """Daily's REST API as a session uses it, with room creation that never answers."""

    def __init__(self) -> None:
        self.creating = asyncio.Event()

    async def create_room(self, params: Any) -> Any:
        self.creating.set()
        await asyncio.Event().wait()

    async def delete_room_by_name(self, name: str) -> bool:
        return True


class Directory:
    """The cluster as a session publishes to it: every view, as it would go to Redis."""

    def __init__(self) -> None:
        self.views: list[dict[str, Any]] = []

    def publish_session(self, view: dict[str, Any]) -> None:
        self.views.append(view)


async def test_the_view_published_to_redis_holds_one_scrubbed_error_line_and_no_request_key(tmp_path: Path) -> None:
    key = "byo-" + secrets.token_urlsafe(32)  # no credential's shape: masked because the session registered it
    published: list[tuple[str, dict[str, Any]]] = []
    rest = HeldREST()
    services = Services(parse(""), pool=None, rest=rest, store=Store(tmp_path / "sessions.db"),  # type: ignore[arg-type]
                        publish=lambda kind, data: published.append((kind, data)))
    directory = Directory()
    services.cluster = directory
    request = BotsStart(profile="voice_2024_10", kind="echo").holding(
        RequestSecrets(service_options={"openai": {"api_key": key}}, body={"openai_api_key": key}))
    session = Session(services, request)
    session.start()
    await asyncio.wait_for(rest.creating.wait(), 10)
    session.stop(EndReason.ERROR, "the provider refused:\nTraceback (most recent call last):\n  File \"llm.py\"\n"
                                  f"AuthenticationError: Incorrect API key provided: {key}")
    await asyncio.wait_for(session.finished.wait(), 10)
    last = directory.views[-1]
    assert last["state"] == "failed"
    assert last["error"] == f"the provider refused: AuthenticationError: Incorrect API key provided: {MARKER}"
    assert key not in json.dumps(directory.views) and key not in json.dumps(published)
    assert key not in json.dumps(msgspec.to_builtins(Store(tmp_path / "sessions.db").get(session.id)))
    assert scrub.scrub(key) == key  # the session ended: it forgot the request's key


def test_the_view_of_a_record_written_with_a_traceback_shows_one_scrubbed_line() -> None:
    # a record an older version wrote, or one written outside the session (reconcile, node_lost)
    record = SessionRecord(id="s1", state=SessionState.FAILED, profile="p", kind="pipecat", end_reason="bot_error",
                           error="Traceback (most recent call last):\n  File \"bot.py\", line 9, in bot\n"
                                 "RuntimeError: Authorization: Bearer abcdefgh12345678\n")
    assert describe_record(record)["error"] == f"RuntimeError: Authorization: Bearer {MARKER}"
