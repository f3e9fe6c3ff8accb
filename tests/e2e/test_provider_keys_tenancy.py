"""Bots are tenants (SPEC §11): the Daily Bots profiles get their providers' keys in memory,
and a URL a request chooses never gets the operator's key.

The supervisor resolves each service's key when it accepts a start -- the request's own
(``service_options.<provider>.api_key``), else the operator's from its environment snapshot
-- and hands the worker exactly those in ``RunBot.provider_keys``. The operator's key goes
only to the provider's default URL or below a ``[providers] allowed_base_urls`` entry; a
``base_url`` the request chose elsewhere (in ``config`` or ``service_options``) without a key
of its own is a 422 naming the option. The worker reads keys only from its session, never
from the body or ``os.environ``, and never puts them there.

Unit checks use the small daemon of ``test_providers.py``; the end-to-end ones run the real
supervisor, its workers and the sandbox against the local OpenAI-compatible stand-in, which
records every request's ``Authorization``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callfleet.providers import PROVIDERS, ServiceType, operator_may_use
from protocol.messages import Err, ErrCode, RunBot
from sandbox.caller import Caller, CallerOptions
from supervisor.bots.services import ServiceError, session_keys
from supervisor.http.app import make_app
from tests.conftest import REPO, free_port
from tests.doubles.openai_server import FakeOpenAI
from tests.e2e.test_providers import RunningDaemon
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until as wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

OPERATOR = "sk-operator-openai-5e1d"  # the operator's OPENAI_API_KEY
OPERATOR_LLM = "sk-operator-custom-77ab"  # the operator's CUSTOM_LLM_API_KEY
BYO = "sk-request-own-key-0c4f"
FOREIGN = "https://collector.example/v1"
OPENAI_VOICE = {"stt": "daily", "llm": "openai", "tts": "openai_tts"}


def llm_config(**options: Any) -> list[dict[str, Any]]:
    return [{"service": "llm", "options": [{"name": k, "value": v} for k, v in options.items()]}]


async def bots_start(daemon: RunningDaemon, body: dict[str, Any], path: str = "/bots/start") -> tuple[int, Any]:
    async with TestClient(TestServer(make_app(daemon))) as client:
        resp = await client.post(path, json=body)
        return resp.status, await resp.json()


def operator_daemon(allowed: list[str] | None = None) -> RunningDaemon:
    config = f"[providers]\nallowed_base_urls = {json.dumps(allowed)}\n" if allowed else ""
    return RunningDaemon({"OPENAI_API_KEY": OPERATOR, "CUSTOM_LLM_API_KEY": OPERATOR_LLM}, config)


# -- a request-chosen URL without the request's own key ----------------------------------------------


@pytest.mark.parametrize(("body", "option"), [
    ({"services": OPENAI_VOICE, "config": llm_config(model="gpt-4o", base_url=FOREIGN)}, "config[0].options[1]"),
    ({"services": OPENAI_VOICE, "service_options": {"openai": {"base_url": FOREIGN}}}, "service_options.openai.base_url"),
    ({"services": OPENAI_VOICE, "service_options": {"openai_tts": {"base_url": FOREIGN}}},
     "service_options.openai_tts.base_url"),
    # config wins over service_options, so the URL in config is the one that would get the key
    ({"services": OPENAI_VOICE, "config": llm_config(base_url=FOREIGN),
      "service_options": {"openai": {"base_url": "https://api.openai.com/v1"}}}, "config[0].options[0]"),
])
async def test_a_foreign_base_url_without_the_requests_own_key_is_a_422_naming_the_option(
        body: dict[str, Any], option: str) -> None:
    daemon = operator_daemon()
    status, reply = await bots_start(daemon, {"bot_profile": "voice_2024_10", **body})
    assert status == 422 and reply["error"] == "invalid-request-error", reply
    assert reply["info"].startswith(f"{option}: a request-chosen URL needs the request's own key"), reply
    assert "[providers] allowed_base_urls" in reply["info"] and OPERATOR not in reply["info"]
    assert daemon.registry.started == []


async def test_the_realtime_profiles_llm_config_url_is_its_speech_to_speech_services() -> None:
    daemon = operator_daemon()
    status, reply = await bots_start(daemon, {"bot_profile": "openai_realtime_beta_2024_10",
                                              "services": {"llm": "openai_realtime"},
                                              "config": llm_config(base_url="wss://collector.example/realtime")})
    assert status == 422 and reply["info"].startswith("config[0].options[0]: a request-chosen URL"), reply


@pytest.mark.parametrize("name", sorted(n for n, p in PROVIDERS.items() if p.takes_base_url and p.key_required))
def test_every_provider_that_takes_a_url_keeps_the_operators_key_from_a_foreign_one(name: str) -> None:
    kind = PROVIDERS[name].kind
    services = {"llm": name} if kind is ServiceType.S2S else {kind.value: name}
    profile = "openai_realtime_beta_2024_10" if kind is ServiceType.S2S else "voice_2024_10"
    environ = {p.key_env: f"operator-{p.key_env}" for p in PROVIDERS.values() if p.key_env}
    with pytest.raises(ServiceError, match=rf"^service_options\.{name}\.base_url: a request-chosen URL"):
        session_keys(profile, services, [], {name: {"base_url": FOREIGN}}, environ, is_installed=lambda _: True)
    # the same request with the provider's own default URL: the operator's key goes, to it
    default = PROVIDERS[name].default_url
    assert default is not None
    keys = session_keys(profile, services, [], {name: {"base_url": default}}, environ, is_installed=lambda _: True)
    assert keys[PROVIDERS[name].key_env or ""] == f"operator-{PROVIDERS[name].key_env}"


async def test_a_foreign_url_in_a_start_body_for_a_daily_bots_profile_is_a_422_too() -> None:
    daemon = operator_daemon()
    status, reply = await bots_start(daemon, {"profile": "voice_2024_10", "body": {
        "services": OPENAI_VOICE, "service_options": {"openai": {"base_url": FOREIGN}}}}, path="/start")
    assert status == 422 and reply["info"].startswith("body.service_options.openai.base_url: a request-chosen URL")
    assert daemon.registry.started == []


# -- the request's own key, an allowed URL ----------------------------------------------------------


async def test_with_its_own_key_a_request_may_choose_any_url_and_only_its_key_is_handed_over() -> None:
    daemon = operator_daemon()
    status, reply = await bots_start(daemon, {
        "bot_profile": "voice_2024_10", "services": OPENAI_VOICE, "config": llm_config(base_url=FOREIGN),
        "service_options": {"openai": {"api_key": BYO}}})
    assert status == 429, reply  # accepted: past the checks, into the (full) pool
    (start,) = daemon.registry.started
    # openai_tts, at its default URL, shares OPENAI_API_KEY: the request's key serves both
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": BYO}
    assert BYO not in json.dumps(start.runner_body("proxy-key", "http://proxy"))
    assert BYO not in json.dumps(start.recorded())


async def test_a_start_body_for_a_daily_bots_profile_hands_its_key_over_in_memory_only() -> None:
    daemon = operator_daemon()
    status, _ = await bots_start(daemon, {"profile": "voice_2024_10", "body": {
        "services": OPENAI_VOICE, "service_options": {"openai": {"base_url": FOREIGN, "api_key": BYO}}}},
        path="/start")
    assert status == 429
    (start,) = daemon.registry.started
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": BYO}
    body = start.runner_body("proxy-key", "http://proxy")
    assert body["service_options"] == {"openai": {"base_url": FOREIGN}}
    assert body["bot_profile"] == "voice_2024_10"
    assert start.recorded()["body"] == body


async def test_two_different_own_keys_for_one_variable_are_a_422() -> None:
    status, reply = await bots_start(operator_daemon(), {
        "bot_profile": "voice_2024_10", "services": OPENAI_VOICE,
        "service_options": {"openai": {"api_key": BYO}, "openai_tts": {"api_key": BYO + "-2"}}})
    assert status == 422 and "both providers read OPENAI_API_KEY" in reply["info"], reply
    assert BYO not in reply["info"]


async def test_a_url_below_an_allowed_base_url_gets_the_operators_key() -> None:
    daemon = operator_daemon(["https://llm-proxy.internal/openai"])
    status, reply = await bots_start(daemon, {
        "bot_profile": "voice_2024_10", "services": OPENAI_VOICE,
        "config": llm_config(base_url="https://llm-proxy.internal/openai/v1")})
    assert status == 429, reply
    (start,) = daemon.registry.started
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": OPERATOR}


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://api.openai.com/v1", True),  # the provider's default
    ("https://API.openai.com:443/v1/", True),
    ("https://llm-proxy.internal/openai", True),
    ("https://llm-proxy.internal/openai/v1/chat", True),
    ("https://api.openai.com.collector.example/v1", False),  # a lookalike host
    ("https://api.openai.com@collector.example/v1", False),  # credentials: the host is the other one
    ("http://api.openai.com/v1", False),  # in the clear
    ("https://api.openai.com:8443/v1", False),
    ("https://llm-proxy.internal/openai-mirror", False),  # not below the allowed path
    ("https://llm-proxy.internal/openai/../admin", False),  # out of it
    ("https://llm-proxy.internal/openai/%2e%2e/admin", False),
    ("https://llm-proxy.internal/openai/\n", False),
    ("https://llm-proxy.internal.", False),
    ("collector.example", False),  # a bare host (Deepgram takes one) is still a host
])
def test_the_operators_key_goes_only_to_the_default_or_below_an_allowed_url(url: str, allowed: bool) -> None:
    assert operator_may_use(PROVIDERS["openai"], url, ["https://llm-proxy.internal/openai"]) is allowed


def test_deepgrams_bare_host_is_compared_as_the_host_it_names() -> None:
    assert operator_may_use(PROVIDERS["deepgram"], "api.deepgram.com", [])
    assert operator_may_use(PROVIDERS["deepgram"], "https://api.deepgram.com", [])
    assert not operator_may_use(PROVIDERS["deepgram"], "dg.collector.example", [])


# -- custom_llm: no key required, so none of the operator's at a request-chosen URL -----------------


async def test_custom_llm_at_a_request_chosen_url_runs_without_the_operators_key() -> None:
    daemon = operator_daemon(["https://llm.internal/v1"])
    services = {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"}
    status, _ = await bots_start(daemon, {"bot_profile": "voice_2024_10", "services": services,
                                          "service_options": {"custom_llm": {"base_url": FOREIGN}}})
    assert status == 429
    status, _ = await bots_start(daemon, {"bot_profile": "voice_2024_10", "services": services,
                                          "service_options": {"custom_llm": {"base_url": "https://llm.internal/v1"}}})
    assert status == 429
    foreign, allowed = daemon.registry.started
    assert foreign.secrets.provider_keys == {"OPENAI_API_KEY": OPERATOR}  # the TTS's, at its default URL
    assert allowed.secrets.provider_keys == {"OPENAI_API_KEY": OPERATOR, "CUSTOM_LLM_API_KEY": OPERATOR_LLM}


# -- what the session is handed besides keys, and what a key file becomes --------------------------


def test_a_setting_the_pipeline_reads_travels_with_the_keys_and_reaches_the_service(
        monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"AZURE_SPEECH_API_KEY": "az-key", "AZURE_SPEECH_REGION": "eastus"}
    keys = session_keys("voice_2024_10", {"stt": "daily", "llm": "custom_llm", "tts": "azure_tts"}, [],
                        {"custom_llm": {"base_url": "http://127.0.0.1:9/v1"}}, environ)
    assert keys == environ
    from worker.daily_bots.request import parse_request
    from worker.daily_bots.services import build_tts

    monkeypatch.setenv("AZURE_SPEECH_REGION", "westus")  # a worker's environment is never read
    request = parse_request({"bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm",
                                                                         "tts": "azure_tts"}}, keys)
    tts = request.service(ServiceType.TTS)
    assert tts is not None and tts.settings == {"AZURE_SPEECH_REGION": "eastus"}
    service = build_tts(tts.provider, tts.options, tts.api_key, sample_rate=16000, settings=tts.settings)
    assert service._region == "eastus"


def test_the_operators_key_file_is_read_by_the_supervisor_and_a_worker_never_reads_a_path(tmp_path: Path) -> None:
    document = '{"type": "service_account", "private_key": "-----BEGIN-----"}'
    (tmp_path / "sa.json").write_text(document)
    environ = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "sa.json")}
    keys = session_keys("voice_2024_10", {"stt": "daily", "llm": "custom_llm", "tts": "google_tts"}, [],
                        {"custom_llm": {"base_url": "http://127.0.0.1:9/v1"}}, environ, is_installed=lambda _: True)
    assert keys == {"GOOGLE_APPLICATION_CREDENTIALS": document}
    from worker.daily_bots.services import build_tts

    with pytest.raises(ValueError, match="expected the service account's JSON key"):
        build_tts("google_tts", {}, str(tmp_path / "sa.json"), sample_rate=16000)


# -- the worker: keys only from its session --------------------------------------------------------


def test_a_keyed_service_without_a_session_key_is_an_error_not_the_environments_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.daily_bots.request import parse_request
    from worker.daily_bots.services import build_llm

    monkeypatch.setenv("OPENAI_API_KEY", OPERATOR)  # what Pipecat's SDK would read if handed no key
    request = parse_request({"bot_profile": "voice_2024_10", "services": OPENAI_VOICE,
                             "service_options": {"openai": {"api_key": BYO}}}, {})
    llm = request.service(ServiceType.LLM)
    assert llm is not None and llm.api_key is None  # neither the body's key nor the environment's
    with pytest.raises(ValueError, match="openai: this session was handed no OPENAI_API_KEY"):
        build_llm(llm.provider, llm.options, llm.api_key)


class HostThatNeverJoins:
    """The bot runner's call host, for a bot that returns without joining."""

    joined = False

    def expect_bot_join(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()


PROBE = '''
import asyncio, json, os
from worker.daily_bots import keys

async def bot(runner_args):
    seen = {"keys": dict(keys.current()), "environ": dict(os.environ)}
    seen["in_a_task"] = dict(await asyncio.create_task(asyncio.sleep(0, keys.current())))
    with open(runner_args.body["out"], "w") as out:
        json.dump(seen, out)
'''


async def test_the_bot_runner_hands_the_keys_to_the_bots_task_only_never_to_os_environ(tmp_path: Path) -> None:
    from worker.bot_runner import BotRunner
    from worker.daily_bots import keys

    (tmp_path / "probe.py").write_text(PROBE)
    out = tmp_path / "seen.json"
    runner = BotRunner(HostThatNeverJoins(), lambda finished: None)  # type: ignore[arg-type]
    reply = await runner.run(RunBot(id=1, bot=f"{tmp_path / 'probe.py'}:bot", room_url="https://x.daily.co/r",
                                    token="t", session_id="s-1", body={"out": str(out)},
                                    provider_keys={"OPENAI_API_KEY": OPERATOR}, timeout_s=10))
    assert isinstance(reply, Err) and reply.code == ErrCode.BOT_FINISHED  # it returned without joining
    seen = json.loads(out.read_text())
    assert seen["keys"] == seen["in_a_task"] == {"OPENAI_API_KEY": OPERATOR}
    assert OPERATOR not in json.dumps(seen["environ"])
    assert dict(keys.current()) == {} and OPERATOR not in json.dumps(dict(os.environ))  # not outside its task


# -- end to end: the real supervisor, its workers, the sandbox and the stand-in --------------------


ALLOWED_PORT = free_port()
ALLOWED = f"http://127.0.0.1:{ALLOWED_PORT}/v1"
INSTRUCTIONS = [{"role": "user", "content": "Introduce yourself."}]


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    proc = SupervisorProcess(tmp_path_factory.mktemp("provider-keys"), None,
                             env={"OPENAI_API_KEY": OPERATOR, "CUSTOM_LLM_API_KEY": OPERATOR_LLM},
                             supervisor={"profiles": str(REPO / "configs" / "profiles.toml")},  # the shipped ones
                             providers={"allowed_base_urls": [ALLOWED]},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
async def allowed() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start(ALLOWED_PORT)
    yield server
    await server.stop()


@pytest.fixture
async def foreign() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


def environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""  # gone meanwhile


def assert_no_process_holds_in_its_environment(sup: SupervisorProcess, worker_pid: int, *values: str) -> None:
    """The worker hosting the session, and every other process below the supervisor."""
    pids = {worker_pid, *sup.descendants()}
    assert worker_pid in sup.descendants()
    for pid in pids:
        environ = environ_of(pid)
        for value in values:
            assert value.encode() not in environ, f"process {pid} has a provider key in its environment"


async def talk(sup: SupervisorProcess, body: dict[str, Any], *stand_ins: FakeOpenAI) -> tuple[dict[str, Any], Caller]:
    """Start a voice session, join it as a caller, and wait for its greeting's speech."""
    bot = await sup.start_bot("voice_2024_10", **body)
    caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
    await caller.join()
    await wait_for(lambda: any(s.chats for s in stand_ins), 30, "the greeting's chat completion")
    await wait_for(lambda: any(s.speeches for s in stand_ins), 20, "the greeting's speech")
    return bot, caller


async def hang_up(sup: SupervisorProcess, bot: dict[str, Any], caller: Caller) -> None:
    await caller.conn.leave()
    await sup.wait_session(bot["session_id"], lambda d: d["state"] in ("ended", "failed"), timeout=30)


async def test_end_to_end_a_foreign_url_without_a_key_is_refused_and_that_url_hears_nothing(
        sup: SupervisorProcess, foreign: FakeOpenAI) -> None:
    before = await sup.http("GET", "/sessions")
    refused: list[tuple[dict[str, Any], str]] = [
        ({"config": llm_config(base_url=foreign.base_url)}, "config[0].options[0]"),
        ({"service_options": {"openai": {"base_url": foreign.base_url}}}, "service_options.openai.base_url"),
        ({"service_options": {"openai_tts": {"base_url": foreign.base_url}}}, "service_options.openai_tts.base_url"),
    ]
    for body, option in refused:
        status, reply, _ = await sup.http("POST", "/bots/start", json={
            "bot_profile": "voice_2024_10", "services": OPENAI_VOICE, **body})
        assert status == 422 and reply["info"].startswith(f"{option}: a request-chosen URL"), reply
    after = await sup.http("GET", "/sessions")
    assert len(after[1]["data"]) == len(before[1]["data"])  # no session started
    await asyncio.sleep(1)
    assert foreign.seen == []


async def test_end_to_end_a_request_with_its_own_key_reaches_its_url_with_that_key_only(
        sup: SupervisorProcess, foreign: FakeOpenAI) -> None:
    bot, caller = await talk(sup, {
        "services": OPENAI_VOICE,
        "config": llm_config(base_url=foreign.base_url, model="local-model", initial_messages=INSTRUCTIONS),
        "service_options": {"openai": {"api_key": BYO}, "openai_tts": {"base_url": foreign.base_url, "api_key": BYO}},
    }, foreign)
    try:
        detail = await sup.session(bot["session_id"])
        assert_no_process_holds_in_its_environment(sup, detail["worker_pid"], BYO, OPERATOR, OPERATOR_LLM)
    finally:
        await hang_up(sup, bot, caller)
    assert {path for path, _ in foreign.seen} == {"/v1/chat/completions", "/v1/audio/speech"}
    assert {auth for _, auth in foreign.seen} == {f"Bearer {BYO}"}


async def test_end_to_end_an_allowed_url_gets_the_operators_key_held_only_in_the_workers_memory(
        sup: SupervisorProcess, allowed: FakeOpenAI) -> None:
    bot, caller = await talk(sup, {
        "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
        "config": llm_config(model="local-model", initial_messages=INSTRUCTIONS),
        "service_options": {"custom_llm": {"base_url": allowed.base_url}, "openai_tts": {"base_url": allowed.base_url}},
    }, allowed)
    try:
        detail = await sup.session(bot["session_id"])
        assert_no_process_holds_in_its_environment(sup, detail["worker_pid"], OPERATOR, OPERATOR_LLM)
        assert OPERATOR not in json.dumps(detail) and OPERATOR_LLM not in json.dumps(detail)
    finally:
        await hang_up(sup, bot, caller)
    assert {auth for path, auth in allowed.seen if path == "/v1/chat/completions"} == {f"Bearer {OPERATOR_LLM}"}
    assert {auth for path, auth in allowed.seen if path == "/v1/audio/speech"} == {f"Bearer {OPERATOR}"}


async def test_end_to_end_a_keyless_custom_llm_at_a_request_chosen_url_never_gets_the_operators_key(
        sup: SupervisorProcess, allowed: FakeOpenAI, foreign: FakeOpenAI) -> None:
    bot, caller = await talk(sup, {
        "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
        "config": llm_config(model="local-model", initial_messages=INSTRUCTIONS),
        "service_options": {"custom_llm": {"base_url": foreign.base_url}, "openai_tts": {"base_url": allowed.base_url}},
    }, foreign, allowed)
    await hang_up(sup, bot, caller)
    assert foreign.seen and {auth for _, auth in foreign.seen} == {"Bearer not-needed"}
    assert {auth for _, auth in allowed.seen} == {f"Bearer {OPERATOR}"}
