"""Daily Bots providers: each one the ``test`` extra installs builds the Pipecat service the
provider table names, with the request's options, its key and its ``base_url``, without touching
the network; ``/bots/start`` answers 422 naming the variable or the extra a provider is missing,
and a bring-your-own key reaches the worker (in ``RunBot.provider_keys``) but never the session
record or the bot's body. (Which URLs may get the operator's key: test_provider_keys_tenancy.py.)
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sqlite3
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callfleet.providers import PROVIDERS, ServiceType, installed
from supervisor.bots.services import ServiceError, session_keys
from supervisor.config import parse
from supervisor.http.app import make_app
from supervisor.pool import PoolFull
from supervisor.profiles import parse as parse_profiles
from supervisor.sessions.requests import StartRequest
from tests.conftest import REPO
from tests.doubles.http_daemon import BareDaemon, NoSessions
from tests.supervisor_harness import SupervisorProcess

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

KEY = "sk-callfleet-test-7f3a"
BYO = "sk-byo-never-stored-91c2"


def _test_extras() -> set[str]:
    """The ``pipecat-ai[...]`` extras ``pyproject.toml``'s ``test`` extra installs (with ``pipecat``'s)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    extras = set()
    for requirement in project["test"] + project["pipecat"]:
        name, _, rest = requirement.partition("[")
        if name.strip() == "pipecat-ai":
            extras |= {f"pipecat-ai[{e.strip()}]" for e in rest.partition("]")[0].split(",")}
    return extras


TESTED = sorted(name for name, p in PROVIDERS.items() if p.extra in _test_extras() and p.module)


# -- construction: per provider, the options a request gives and where the service keeps them ------

def _openai_client(svc: Any) -> tuple[str, str]:
    return svc._client.api_key, str(svc._client.base_url)


def _own_key(url_attr: str) -> Callable[[Any], tuple[str, str]]:
    return lambda svc: (svc._api_key, getattr(svc, url_attr))


LLM_OPTIONS = {"model": "m-1", "temperature": 0.4, "max_tokens": 77, "top_p": 0.9}
TTS_OPTIONS = {"voice": "v-1", "model": "m-1", "language": "en"}

# provider -> (options, the settings expected back, (api key, base url) as the instance keeps them)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], Callable[[Any], tuple[str, str]] | None]] = {
    "deepgram": ({"model": "nova-2-general", "language": "en", "punctuate": True, "smart_format": True,
                  "endpointing": 300, "base_url": "http://127.0.0.1:9"},
                 {"model": "nova-2-general", "language": "en", "punctuate": True, "smart_format": True,
                  "endpointing": 300},
                 lambda s: (s._client._client_wrapper.api_key, s._client._client_wrapper._environment.production)),
    "assemblyai": ({"model": "universal-streaming", "language": "en"}, {"model": "universal-streaming",
                                                                        "language": "en"}, None),
    "gladia": ({"model": "solaria-1", "language": "fr", "base_url": "http://127.0.0.1:9/v2/live"},
               {"model": "solaria-1", "language": "fr"}, _own_key("_url")),
    "anthropic": ({**LLM_OPTIONS, "model": "claude-3-5-sonnet-latest", "base_url": "http://127.0.0.1:9"},
                  {**LLM_OPTIONS, "model": "claude-3-5-sonnet-latest"}, _openai_client),
    "together": ({**LLM_OPTIONS, "base_url": "http://127.0.0.1:9/v1"}, LLM_OPTIONS, _openai_client),
    "grok": ({**LLM_OPTIONS, "base_url": "http://127.0.0.1:9/v1"}, LLM_OPTIONS, _openai_client),
    "groq": ({**LLM_OPTIONS, "base_url": "http://127.0.0.1:9/v1"}, LLM_OPTIONS, _openai_client),
    "openai": ({**LLM_OPTIONS, "base_url": "http://127.0.0.1:9/v1"}, LLM_OPTIONS, _openai_client),
    "custom_llm": ({**LLM_OPTIONS, "base_url": "http://127.0.0.1:9/v1"}, LLM_OPTIONS, _openai_client),
    "cartesia": ({**TTS_OPTIONS, "voice": "79a125e8-cd45-4c13-8a67-188112f4dd22", "model": "sonic-english",
                  "base_url": "ws://127.0.0.1:9/tts/websocket"},
                 {"voice": "79a125e8-cd45-4c13-8a67-188112f4dd22", "model": "sonic-english", "language": "en"},
                 _own_key("_url")),
    "deepgram_tts": ({"voice": "aura-orion-en", "base_url": "ws://127.0.0.1:9"}, {"voice": "aura-orion-en"},
                     _own_key("_base_url")),
    "elevenlabs": ({**TTS_OPTIONS, "model": "eleven_turbo_v2_5", "stability": 0.4, "similarity_boost": 0.7,
                    "base_url": "ws://127.0.0.1:9"},
                   {"voice": "v-1", "model": "eleven_turbo_v2_5", "stability": 0.4, "similarity_boost": 0.7},
                   _own_key("_url")),
    "azure_tts": ({"voice": "en-US-AvaNeural", "language": "en-US", "region": "eastus", "style": "cheerful"},
                  {"voice": "en-US-AvaNeural", "language": "en-US", "style": "cheerful"}, None),
    "openai_tts": ({"voice": "nova", "model": "tts-1", "speed": 1.5, "base_url": "http://127.0.0.1:9/v1"},
                   {"voice": "nova", "model": "tts-1", "speed": 1.5}, _openai_client),
    "rime": ({"voice": "rex", "model": "mist", "base_url": "ws://127.0.0.1:9/ws3"},
             {"voice": "rex", "model": "mist"}, _own_key("_url")),
    "openai_realtime": ({"model": "gpt-realtime", "instructions": "Be brief.",
                         "base_url": "ws://127.0.0.1:9/v1/realtime"},
                        {"model": "gpt-realtime", "system_instruction": "Be brief."},
                        lambda s: (s.api_key, s.base_url)),
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup while a service is built fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a service touched the network while being built: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _build(name: str, options: dict[str, Any], key: str | None, sample_rate: int = 16000) -> Any:
    from worker.daily_bots import services

    kind = PROVIDERS[name].kind
    if kind == ServiceType.STT:
        return services.build_stt(name, dict(options), key, sample_rate=sample_rate)
    if kind == ServiceType.TTS:
        return services.build_tts(name, dict(options), key, sample_rate=sample_rate)
    if kind == ServiceType.LLM:
        return services.build_llm(name, dict(options), key)
    return services.build_s2s(name, dict(options), key)


def test_the_test_extra_installs_every_provider_it_claims_and_each_has_a_construction_case() -> None:
    assert {"deepgram", "anthropic", "cartesia", "openai", "custom_llm", "openai_tts"} <= set(TESTED)
    for name in TESTED:
        assert installed(PROVIDERS[name].distribution or ""), f"{name}: {PROVIDERS[name].distribution} missing"
    assert set(TESTED) <= set(CASES), f"no construction case for {sorted(set(TESTED) - set(CASES))}"


@pytest.mark.parametrize("name", TESTED)
def test_each_installed_provider_builds_its_pipecat_class_with_the_requests_options(
        name: str, no_network: None) -> None:
    options, expected, where = CASES[name]
    provider = PROVIDERS[name]
    svc = _build(name, options, KEY)
    assert type(svc).__module__ == provider.module and type(svc).__name__ == provider.cls
    given = svc._settings.given_fields()
    got = {k: str(given[k]) if k == "language" else given[k] for k in expected}
    assert got == expected
    if where is not None:
        key, url = where(svc)
        assert key == KEY
        if "base_url" in options:
            given_url = urlsplit(options["base_url"])  # Deepgram derives ws:// from an http:// base
            assert urlsplit(url).netloc == given_url.netloc and urlsplit(url).path.startswith(
                given_url.path.rstrip("/")), (url, options["base_url"])
    else:
        assert svc._api_key == KEY


@pytest.mark.parametrize("name", [n for n in TESTED if PROVIDERS[n].kind == ServiceType.STT])
def test_stt_services_hear_at_the_pipelines_sample_rate(name: str) -> None:
    assert _build(name, CASES[name][0], KEY, sample_rate=16000)._init_sample_rate == 16000


@pytest.mark.parametrize("name", [n for n in TESTED if PROVIDERS[n].kind == ServiceType.TTS])
def test_tts_services_speak_at_the_pipelines_sample_rate_unless_the_request_sets_one(name: str) -> None:
    options = CASES[name][0]
    assert _build(name, options, KEY, sample_rate=16000)._init_sample_rate == 16000
    if name != "elevenlabs":  # ElevenLabs takes its rate from output_format
        assert _build(name, {**options, "sample_rate": 24000}, KEY)._init_sample_rate == 24000
    else:
        assert _build(name, {**options, "output_format": "pcm_22050"}, KEY)._init_sample_rate == 22050


def test_daily_stt_builds_no_service_the_transport_transcribes() -> None:
    from worker.daily_bots.services import build_stt, daily_transcription

    assert build_stt("daily", {"model": "nova-2-general", "language": "fr"}, None, sample_rate=16000) is None
    assert daily_transcription({"model": "nova-2-general", "language": "fr"}) == {
        "model": "nova-2-general", "language": "fr"}


def test_custom_llm_without_base_url_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"service_options\.custom_llm\.base_url: required"):
        _build("custom_llm", {"model": "m"}, None)


def test_custom_llm_runs_without_a_key_against_a_self_hosted_endpoint(no_network: None) -> None:
    svc = _build("custom_llm", {"model": "m", "base_url": "http://127.0.0.1:9/v1"}, None)
    assert str(svc._client.base_url) == "http://127.0.0.1:9/v1/" and svc._client.api_key


@pytest.mark.parametrize(("name", "options", "option"), [
    ("openai", {"temperature": "hot"}, "temperature"),
    ("anthropic", {"max_tokens": 0}, "max_tokens"),
    ("openai_tts", {"sample_rate": 7}, "sample_rate"),
    ("cartesia", {"language": "klingon"}, "language"),
    ("deepgram", {"endpointing": "soon"}, "endpointing"),
    ("elevenlabs", {"output_format": "mp3_44100"}, "output_format"),
    ("azure_tts", {"voice": "en-US-AvaNeural"}, "region"),
    ("openai_realtime", {"modalities": ["smell"]}, "modalities"),
    ("openai_realtime", {"turn_detection": "eager"}, "turn_detection"),
])
def test_a_bad_option_value_is_a_value_error_naming_the_option(
        name: str, options: dict[str, Any], option: str) -> None:
    with pytest.raises(ValueError, match=rf"^{option}: "):
        _build(name, options, KEY)


def test_base_url_for_a_service_that_takes_none_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^base_url: refused for azure_tts: .*takes no base_url"):
        _build("azure_tts", {"region": "eastus", "base_url": "http://127.0.0.1:9"}, KEY)


# -- the supervisor's check ----------------------------------------------------------------------

VOICE = "worker.daily_bots.voice:bot"
KEY_ENVS = sorted({p.key_env for p in PROVIDERS.values() if p.key_env})


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment a test starts a supervisor from holds no provider key."""
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)


def test_every_default_and_named_provider_is_checked_with_the_metadata_lookup_it_is_given() -> None:
    env = {"DEEPGRAM_API_KEY": "dg", "ANTHROPIC_API_KEY": "ant", "CARTESIA_API_KEY": "cart", "GROQ_API_KEY": "gq"}
    # Daily Bots' integrated defaults, all keyed: exactly their keys go to the worker
    assert session_keys("voice_2024_10", {}, [], {}, env) == {
        "DEEPGRAM_API_KEY": "dg", "ANTHROPIC_API_KEY": "ant", "CARTESIA_API_KEY": "cart"}
    with pytest.raises(ServiceError, match=r"install pipecat-ai\[anthropic\]"):
        session_keys("voice_2024_10", {}, [], {}, env, is_installed=lambda dist: dist != "anthropic")
    with pytest.raises(ServiceError, match="CARTESIA_API_KEY"):
        session_keys("voice_2024_10", {}, [], {}, {k: v for k, v in env.items() if k != "CARTESIA_API_KEY"})
    with pytest.raises(ServiceError, match="playht: no Pipecat service"):
        session_keys("voice_2024_10", {"tts": "playht"}, [], {"playht": {"api_key": "k"}}, env)
    with pytest.raises(ServiceError, match="speech-to-speech provider"):
        session_keys("openai_realtime_beta_2024_10", {"llm": "anthropic"}, [], {}, env)
    assert session_keys("openai_realtime_beta_2024_10", {"llm": "openai_realtime"}, [], {},
                        {"OPENAI_API_KEY": "k"}) == {"OPENAI_API_KEY": "k"}


class _Registry(NoSessions):
    """Takes the start (so the check has passed) and answers that the pool is full."""

    def __init__(self) -> None:
        self.started: list[StartRequest] = []

    def start(self, request: StartRequest) -> Any:
        self.started.append(request)
        raise PoolFull("stand-in")


class RunningDaemon(BareDaemon):
    """Just enough daemon for /bots/start to validate and hand a start to its registry;
    ``environ`` is the operator's environment it snapshotted."""

    registry: _Registry
    profiles = parse_profiles(f'[profiles.voice_2024_10]\nkind = "pipecat"\nbot = "{VOICE}"\n'
                              '[profiles.openai_realtime_beta_2024_10]\nkind = "pipecat"\n'
                              'bot = "worker.daily_bots.realtime:bot"\n'
                              '[profiles.mine]\nkind = "pipecat"\nbot = "examples/pipecat_echo.py:bot"\n')

    def __init__(self, environ: dict[str, str] | None = None, config: str = "") -> None:
        self.registry = _Registry()
        self.environ = environ or {}
        self.config = parse(config)


async def _bots_start(daemon: RunningDaemon, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(make_app(daemon))) as client:
        resp = await client.post("/bots/start", json=body)
        return resp.status, await resp.json()


OFFLINE = {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"}


async def test_a_provider_with_no_key_is_a_422_naming_its_variable() -> None:
    daemon = RunningDaemon()
    status, reply = await _bots_start(daemon, {"bot_profile": "voice_2024_10", "services": {
        "llm": "anthropic", "tts": "cartesia"}, "service_options": {}})
    assert status == 422 and reply["error"] == "invalid-request-error"
    assert "DEEPGRAM_API_KEY" in reply["info"]  # the default STT is checked first
    status, reply = await _bots_start(daemon, {"bot_profile": "voice_2024_10", "services": OFFLINE,
                                               "service_options": {"custom_llm": {"base_url": "http://h/v1"}}})
    assert status == 422 and "OPENAI_API_KEY" in reply["info"] and "openai_tts" in reply["info"]
    assert daemon.registry.started == []


async def test_a_key_in_the_supervisors_environment_satisfies_the_check_and_travels_in_memory() -> None:
    daemon = RunningDaemon({"OPENAI_API_KEY": KEY})
    status, _ = await _bots_start(daemon, {"bot_profile": "voice_2024_10", "services": OFFLINE,
                                           "service_options": {"custom_llm": {"base_url": "http://h/v1"}}})
    assert status == 429 and len(daemon.registry.started) == 1
    (start,) = daemon.registry.started
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": KEY}  # openai_tts at its default URL; custom_llm keyless


async def test_a_byo_key_satisfies_the_check_and_reaches_only_the_workers_keys() -> None:
    daemon = RunningDaemon()
    options = {"custom_llm": {"base_url": "http://h/v1", "api_key": BYO},
               "openai_tts": {"base_url": "http://h/v1", "api_key": BYO, "voice": "nova"}}
    status, reply = await _bots_start(daemon, {"bot_profile": "voice_2024_10", "services": OFFLINE,
                                               "service_options": options})
    assert status == 429, reply  # past the check, into the (full) pool
    (start,) = daemon.registry.started
    assert start.secrets.provider_keys == {"CUSTOM_LLM_API_KEY": BYO, "OPENAI_API_KEY": BYO}
    body = start.runner_body("proxy-key", "http://proxy")
    assert body["service_options"] == {
        "custom_llm": {"base_url": "http://h/v1"}, "openai_tts": {"base_url": "http://h/v1", "voice": "nova"}}
    assert BYO not in json.dumps(body) and BYO not in json.dumps(start.recorded())
    assert start.recorded()["daily_bots"]["service_options"] == {
        "custom_llm": {"base_url": "http://h/v1"}, "openai_tts": {"base_url": "http://h/v1", "voice": "nova"}}
    assert BYO not in repr(start)


async def test_a_provider_whose_extra_is_not_installed_is_a_422_naming_the_extra() -> None:
    if installed("google-cloud-texttospeech"):
        pytest.skip("pipecat-ai[google] is installed here")
    daemon = RunningDaemon()
    status, reply = await _bots_start(daemon, {"bot_profile": "voice_2024_10", "services": {
        "stt": "daily", "llm": "custom_llm", "tts": "google_tts"},
        "service_options": {"custom_llm": {"base_url": "http://h/v1"}, "google_tts": {"api_key": "{}"}}})
    assert status == 422 and "pipecat-ai[google]" in reply["info"], reply


async def test_custom_llm_without_base_url_is_a_422_naming_it() -> None:
    status, reply = await _bots_start(RunningDaemon(), {"bot_profile": "voice_2024_10", "services": {
        "stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
        "service_options": {"openai_tts": {"api_key": BYO}}})
    assert status == 422 and "service_options.custom_llm.base_url" in reply["info"], reply


async def test_a_provider_outside_the_tables_stays_a_422() -> None:
    status, reply = await _bots_start(RunningDaemon(), {"bot_profile": "voice_2024_10", "services": {
        "tts": "acme"}})
    assert status == 422 and "services.tts: unknown provider 'acme'" in reply["info"]


async def test_the_realtime_profile_names_its_speech_to_speech_provider_under_llm() -> None:
    status, reply = await _bots_start(RunningDaemon(), {"bot_profile": "openai_realtime_beta_2024_10",
                                                        "services": {"llm": "openai_realtime"}})
    assert status == 422 and "OPENAI_API_KEY" in reply["info"], reply
    status, reply = await _bots_start(RunningDaemon({"OPENAI_API_KEY": KEY}), {
        "bot_profile": "openai_realtime_beta_2024_10", "services": {"llm": "openai_realtime"}})
    assert status == 429, reply


async def test_a_users_own_pipecat_profile_needs_no_provider_keys_and_gets_the_body_as_given() -> None:
    daemon = RunningDaemon({"ANTHROPIC_API_KEY": KEY})
    options = {"anthropic": {"api_key": BYO}}
    status, _ = await _bots_start(daemon, {"bot_profile": "mine", "services": {"llm": "anthropic"},
                                           "service_options": options})
    assert status == 429 and len(daemon.registry.started) == 1
    (start,) = daemon.registry.started
    # your own bot reads the Daily Bots fields itself; none of the operator's keys go with them
    assert start.secrets.provider_keys == {}
    assert start.runner_body("proxy-key", "http://proxy")["service_options"] == options


# -- the record, on a real supervisor --------------------------------------------------------------


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[SupervisorProcess]:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[profiles.voice_2024_10]\nkind = "pipecat"\nbot = "{VOICE}"\n')
    sup = SupervisorProcess(tmp_path, None, supervisor={"profiles": str(profiles)}, pool={"min_idle": 1})
    sup.start()
    try:
        yield sup
    finally:
        sup.stop()


async def test_a_byo_key_is_never_on_the_session_record(bare_env: None, supervisor: SupervisorProcess) -> None:
    # nothing listens on port 9: the bot cannot reach these services, and need not
    options = {"custom_llm": {"base_url": "http://127.0.0.1:9/v1", "api_key": BYO},
               "openai_tts": {"base_url": "http://127.0.0.1:9/v1", "api_key": BYO}}
    reply = await supervisor.start_bot("voice_2024_10", services=OFFLINE, service_options=options)
    sid = reply["session_id"]
    detail = await supervisor.wait_session(sid, lambda d: d["state"] in ("joined", "ended", "failed"))
    assert BYO not in json.dumps(detail)
    await supervisor.http("DELETE", f"/sessions/{sid}")
    ended = await supervisor.wait_session(sid, lambda d: d["state"] in ("ended", "failed"))
    assert BYO not in json.dumps(ended)
    with sqlite3.connect(supervisor.run_dir / "sessions.db") as db:
        rows = db.execute("SELECT * FROM sessions").fetchall()
        (extra,) = db.execute("SELECT extra FROM sessions WHERE id = ?", (sid,)).fetchone()
    assert rows and all(BYO not in str(row) for row in rows)
    # the record keeps the request, just not its keys
    assert json.loads(extra)["daily_bots"]["service_options"] == {
        "custom_llm": {"base_url": "http://127.0.0.1:9/v1"}, "openai_tts": {"base_url": "http://127.0.0.1:9/v1"}}
    listed = await supervisor.http("GET", "/sessions")
    assert BYO not in json.dumps(listed[1])
    assert BYO not in supervisor.log_path.read_text()
