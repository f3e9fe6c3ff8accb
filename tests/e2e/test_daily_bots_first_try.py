"""A new user's first try at Daily Bots on callfleet, made to work (issue 19).

- Daily Bots' top-level ``api_keys`` (``{"<provider>": "<key>"}``) are the request's own
  keys, with the rules of ``service_options.<provider>.api_key``: they satisfy the key
  check, count as the request's own key for a URL the request chose, travel in memory
  only, and are never part of a record or a bot's body.
- Everything a pipeline is missing (keys, extras) is one 422 listing each with what to do.
- The ``vad`` config entry Daily's RTVI clients send is Pipecat's ``VADParams`` for the
  profile's Silero analyzer; what cannot be honoured is a 422 saying what to do.
- The README's offline recipe runs as written: the shipped sandbox config, the README's own
  ``/bots/start`` body and ``callfleet caller`` command (read from the README, so it cannot go
  stale), and the bot's spoken answer heard by the caller.
- A bot of your own gets the ``api_keys`` in its body, and what it logs or raises with them
  reaches the log and the record scrubbed.

Unit checks use the small daemon of ``test_providers.py``; the end-to-end one runs the real
supervisor, its workers and the sandbox with its stand-in AI services.
"""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from callfleet.audio import read_wav, rms
from supervisor.bots.services import ServiceError, session_keys
from supervisor.http.app import make_app
from supervisor.sessions.requests import BotsStart, PipecatStart
from tests.conftest import REPO, free_port
from tests.e2e.test_providers import RunningDaemon
from tests.supervisor_harness import SupervisorProcess

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

OPERATOR = "sk-operator-openai-5e1d3a"  # the operator's OPENAI_API_KEY
OWN = "sk-request-own-key-0c4f9b"  # a key the request brought
LOCAL = "http://127.0.0.1:9/v1"  # a URL the request chose
FOREIGN = "https://collector.example/v1"
OFFLINE = {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"}
OPENAI_VOICE = {"stt": "daily", "llm": "openai", "tts": "openai_tts"}
AT_LOCAL = {"custom_llm": {"base_url": LOCAL}, "openai_tts": {"base_url": LOCAL}}


async def post(daemon: RunningDaemon, body: dict[str, Any], path: str = "/bots/start") -> tuple[int, Any]:
    async with TestClient(TestServer(make_app(daemon))) as client:
        resp = await client.post(path, json=body)
        return resp.status, await resp.json()


def accepted(daemon: RunningDaemon, status: int, reply: Any) -> Any:
    """The start the view handed on (the stand-in registry answers 429: the check passed)."""
    assert status == 429, reply
    [start] = daemon.registry.started
    return start


# -- api_keys: the request's own keys ------------------------------------------------------------------


async def test_api_keys_satisfy_the_key_check_and_travel_in_memory_only() -> None:
    daemon = RunningDaemon()  # the operator has no key at all
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10", "services": OFFLINE,
                                        "service_options": AT_LOCAL, "api_keys": {"openai_tts": OWN}})
    start = accepted(daemon, status, reply)
    assert isinstance(start, BotsStart)
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": OWN}  # the worker's, in memory
    assert OWN in start.secret_values()  # registered with the scrubber while the session lives
    # nothing encoded from the request, nor what its record keeps, nor the pipeline's body, holds it
    for kept in (msgspec.to_builtins(start), start.recorded(), start.runner_body("k", "http://proxy")):
        assert OWN not in json.dumps(kept), kept
    assert "api_keys" not in start.runner_body("k", "http://proxy")


async def test_api_keys_count_as_the_requests_own_key_for_a_url_the_request_chose() -> None:
    daemon = RunningDaemon({"OPENAI_API_KEY": OPERATOR})
    body = {"bot_profile": "voice_2024_10", "services": OPENAI_VOICE,
            "service_options": {"openai": {"base_url": FOREIGN}}}
    status, reply = await post(daemon, body)
    assert status == 422 and reply["info"].startswith("service_options.openai.base_url: a request-chosen URL "
                                                      "needs the request's own key (api_keys.openai"), reply
    status, reply = await post(daemon, {**body, "api_keys": {"openai": OWN}})
    start = accepted(daemon, status, reply)
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": OWN}  # never the operator's, at that URL


async def test_api_keys_take_the_place_of_the_operators_key_at_the_providers_own_url() -> None:
    daemon = RunningDaemon({"OPENAI_API_KEY": OPERATOR})
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10", "services": OPENAI_VOICE,
                                        "api_keys": {"openai": OWN}})
    start = accepted(daemon, status, reply)
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": OWN}  # both openai services read it


async def test_a_users_own_bot_gets_the_api_keys_as_given_in_its_body() -> None:
    daemon = RunningDaemon()
    status, reply = await post(daemon, {"bot_profile": "mine", "api_keys": {"anthropic": OWN}})
    start = accepted(daemon, status, reply)
    assert start.runner_body("k", "http://proxy")["api_keys"] == {"anthropic": OWN}
    assert OWN in start.secret_values() and OWN not in json.dumps(start.recorded())


async def test_a_start_body_for_a_built_in_pipeline_takes_api_keys_too_and_hands_its_bot_none() -> None:
    daemon = RunningDaemon()
    status, reply = await post(daemon, {"profile": "voice_2024_10", "body": {
        "services": OFFLINE, "service_options": AT_LOCAL, "api_keys": {"openai_tts": OWN}}}, "/start")
    start = accepted(daemon, status, reply)
    assert isinstance(start, PipecatStart)
    assert start.secrets.provider_keys == {"OPENAI_API_KEY": OWN}
    assert OWN in start.secret_values()
    assert OWN not in json.dumps(start.runner_body("k", "http://proxy")) and OWN not in json.dumps(start.recorded())


async def test_api_keys_in_a_start_body_for_a_bot_of_your_own_are_secrets_too() -> None:
    daemon = RunningDaemon()
    status, reply = await post(daemon, {"profile": "mine", "body": {"api_keys": {"openai": OWN}, "user": "ada"}},
                               "/start")
    start = accepted(daemon, status, reply)
    assert start.runner_body("k", "http://proxy")["api_keys"] == {"openai": OWN}  # the bot's to use
    assert OWN in start.secret_values()
    assert start.recorded() == {"body": {"api_keys": "[redacted]", "user": "ada"}}


@pytest.mark.parametrize(("api_keys", "info"), [
    ({"nope": OWN}, "api_keys.nope: unknown provider"),
    ({"openai_tts": ""}, "api_keys.openai_tts: expected a non-empty string"),
    ({"google_tts": "/etc/passwd"}, "api_keys.google_tts: expected the service account's JSON key"),
    ({"openai_tts": "sk-another-key-0000000"}, "api_keys.openai_tts: differs from service_options.openai_tts.api_key"),
])
async def test_api_keys_that_name_no_provider_or_no_usable_key_are_a_422_naming_the_entry(
        api_keys: dict[str, str], info: str) -> None:
    daemon = RunningDaemon()
    options = {"custom_llm": {"base_url": LOCAL}, "openai_tts": {"base_url": LOCAL, "api_key": OWN}}
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10", "services": OFFLINE,
                                        "service_options": options, "api_keys": api_keys})
    assert status == 422 and reply["info"].startswith(info), reply
    assert OWN not in reply["info"] and daemon.registry.started == []


# -- everything missing, in one 422 --------------------------------------------------------------------


async def test_every_missing_key_is_named_in_one_422_with_what_to_do() -> None:
    daemon = RunningDaemon()
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10"})  # Daily Bots' defaults, no key at all
    assert status == 422, reply
    info = reply["info"]
    assert "3 things to fix" in info, info
    for provider, variable in (("deepgram", "DEEPGRAM_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
                               ("cartesia", "CARTESIA_API_KEY")):
        assert f"{provider}: no API key; set {variable} in the supervisor's environment, or give " \
               f"api_keys.{provider}" in info, info


def test_missing_extras_keys_and_urls_are_all_reported_together() -> None:
    with pytest.raises(ServiceError) as raised:
        session_keys("voice_2024_10", {"stt": "deepgram", "llm": "custom_llm", "tts": "cartesia"}, [], {}, {},
                     is_installed=lambda dist: dist not in ("deepgram-sdk", "websockets"))
    problems = re.findall(r"\((\d)\) ([^:]+):", str(raised.value))
    assert problems == [("1", "deepgram"), ("2", "deepgram"), ("3", "service_options.custom_llm.base_url"),
                        ("4", "cartesia"), ("5", "cartesia")], str(raised.value)
    message = str(raised.value)
    assert "install pipecat-ai[deepgram]" in message and "set DEEPGRAM_API_KEY" in message
    assert "base_url: required for custom_llm" in message
    assert "install pipecat-ai[cartesia]" in message and "set CARTESIA_API_KEY" in message


def test_one_missing_thing_is_named_as_before() -> None:
    with pytest.raises(ServiceError, match=r"^cartesia: no API key; set CARTESIA_API_KEY"):
        session_keys("voice_2024_10", {}, [], {}, {"DEEPGRAM_API_KEY": "dg", "ANTHROPIC_API_KEY": "ant"})


# -- the vad entry of Daily's RTVI clients --------------------------------------------------------------


def vad_entry(**params: Any) -> dict[str, Any]:
    return {"service": "vad", "options": [{"name": "params", "value": params}]}


async def test_the_rtvi_clients_vad_entry_is_accepted_and_reaches_the_bot() -> None:
    daemon = RunningDaemon()
    config = [vad_entry(stop_secs=0.5), {"service": "llm", "options": [{"name": "model", "value": "m"}]}]
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10", "services": {**OFFLINE, "vad": "silero"},
                                        "config": config, "service_options": AT_LOCAL,
                                        "api_keys": {"openai_tts": OWN}, "rtvi_client_version": "0.2.1"})
    start = accepted(daemon, status, reply)
    assert start.runner_body("k", "http://proxy")["config"] == config  # the pipeline reads it there


@pytest.mark.parametrize(("body", "info"), [
    ({"config": [vad_entry(stop_sec=0.5)]}, "config[0].options[0].value.stop_sec: unknown VAD parameter"),
    ({"config": [vad_entry(confidence=2)]}, "config[0].options[0].value.confidence: expected a number from 0 to 1"),
    ({"config": [{"service": "vad", "options": [{"name": "args", "value": {}}]}]},
     "config[0].options[0].name: unknown vad option 'args'; a vad entry takes params"),
    ({"services": {"vad": "webrtc"}}, "services.vad: unknown provider 'webrtc'; the voice profiles run Silero VAD"),
])
async def test_vad_settings_that_cannot_be_honoured_are_a_422_saying_what_to_do(body: dict[str, Any],
                                                                                 info: str) -> None:
    daemon = RunningDaemon({"DEEPGRAM_API_KEY": "d", "ANTHROPIC_API_KEY": "a", "CARTESIA_API_KEY": "c"})
    status, reply = await post(daemon, {"bot_profile": "voice_2024_10", **body})
    assert status == 422 and reply["info"].startswith(info), reply


async def test_the_realtime_profile_refuses_a_vad_entry_pointing_at_turn_detection() -> None:
    daemon = RunningDaemon({"OPENAI_API_KEY": OPERATOR})
    status, reply = await post(daemon, {"bot_profile": "openai_realtime_beta_2024_10",
                                        "services": {"llm": "openai_realtime"}, "config": [vad_entry(stop_secs=1)]})
    assert status == 422 and "has no VAD of its own" in reply["info"] and "turn_detection" in reply["info"], reply


def test_the_vad_params_become_the_silero_analyzers() -> None:
    from pipecat.audio.vad.vad_analyzer import VAD_CONFIDENCE

    from worker.daily_bots.pipeline import TurnTaking, conversation
    from worker.daily_bots.request import parse_request

    request = parse_request({"bot_profile": "voice_2024_10", "services": {"llm": "openai"}, "config": [
        vad_entry(stop_secs=0.8, start_secs=0.1), {"service": "llm", "options": [{"name": "model", "value": "m"}]},
        vad_entry(min_volume=0.4)]}, {"OPENAI_API_KEY": "k"})
    assert request.vad == {"stop_secs": 0.8, "start_secs": 0.1, "min_volume": 0.4}  # later entries add to earlier
    _, pair = conversation(request, turn=TurnTaking.SPEECH_TIMEOUT)
    params = pair.user()._params.vad_analyzer.params
    assert (params.stop_secs, params.start_secs, params.min_volume, params.confidence) == (0.8, 0.1, 0.4,
                                                                                          VAD_CONFIDENCE)


# -- the README's offline recipe, end to end -----------------------------------------------------------


class Recipe:
    """The README's first try, as written there: the curl with its body, the caller command
    and the output the README shows for it."""

    def __init__(self, readme: str) -> None:
        section = readme[readme.index("### A first try, offline"):]
        block = section[section.index("```\n") + 4:]
        block = block[:block.index("```\n")]
        lines = block.splitlines()
        curl = next(i for i, line in enumerate(lines) if "/bots/start -d @- <<'EOF'" in line)
        end = lines.index("EOF", curl)
        self.curl = "\n".join(lines[curl:end + 1])
        self.body: dict[str, Any] = json.loads("\n".join(lines[curl + 1:end]))
        self.caller = next(line for line in lines if line.startswith(".venv/bin/callfleet caller "))
        self.shown = [line.split("#", 1)[1].strip() for line in lines[end + 1:] if "bot said:" in line]


def shipped_sandbox_config(sup: SupervisorProcess, sandbox_port: int) -> dict[str, Any]:
    """configs/sandbox.toml as shipped, on this test's ports and run_dir."""
    config = tomllib.loads((REPO / "configs" / "sandbox.toml").read_text())
    config["supervisor"].update(http_port=sup.http_port, run_dir=str(sup.run_dir),
                                profiles=str(REPO / "configs" / "profiles.toml"))
    config["sandbox"].update(port=sandbox_port)
    return config


async def test_the_readme_recipe_starts_a_voice_bot_that_answers_the_caller_offline(tmp_path: Path) -> None:
    recipe = Recipe((REPO / "README.md").read_text())
    assert recipe.body["bot_profile"] == "voice_2024_10" and recipe.shown, "the README lost its recipe"
    sandbox_port = free_port()
    sup = SupervisorProcess(tmp_path, sandbox_port)
    sup.config = shipped_sandbox_config(sup, sandbox_port)
    sup.write_config()

    def here(text: str) -> str:  # the README's ports, as this test's free ones
        return text.replace("127.0.0.1:7940", f"127.0.0.1:{sup.http_port}").replace(
            "127.0.0.1:8990", f"127.0.0.1:{sandbox_port}")

    sup.start(timeout=60)
    try:
        started = subprocess.run(["bash", "-c", here(recipe.curl)], capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        reply = json.loads(started.stdout)
        assert set(reply) == {"room_url", "token", "session_id", "stream_token"}, reply

        argv = shlex.split(recipe.caller.replace("ROOM_URL", reply["room_url"]).replace("TOKEN", reply["token"]))
        said = argv[argv.index("--say") + 1]
        answer = tmp_path / argv[argv.index("--record") + 1]
        heard = subprocess.run([sys.executable, "-m", "cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                               text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert heard.returncode == 0, heard.stderr[-2000:]

        async with aiohttp.ClientSession() as http:  # what the stand-in AI services were asked
            async with http.get(f"http://127.0.0.1:{sandbox_port}/ai/requests") as resp:
                requests = (await resp.json())["requests"]
        chats = [r for r in requests if r["path"].endswith("/chat/completions")]
        speeches = [r for r in requests if r["path"].endswith("/audio/speech")]

        # The bot answered what the caller said (the stand-in LLM quotes it), out loud.
        answered = f"You said: {said.rstrip('?.!')}."
        assert f"bot said: {answered}" in [line.strip() for line in heard.stdout.splitlines()], (heard.stdout, requests)
        assert recipe.shown[-1] == f"bot said: {answered}", "the README shows another answer than the recipe gives"
        pcm, rate, _ = read_wav(answer)
        frame = rate * 2 // 50
        assert max(rms(pcm[i:i + frame]) for i in range(0, len(pcm) - frame, frame)) > 500, "the caller heard no voice"
        # The LLM heard the caller's words; the TTS spoke the answer with the request's own
        # (dummy) key, as the README says.
        assert any(m.get("content") == said for m in chats[-1]["body"]["messages"] if m["role"] == "user"), chats
        assert answered in [s["body"]["input"] for s in speeches], speeches
        assert {s["authorization"] for s in speeches} == {f"Bearer {recipe.body['api_keys']['openai_tts']}"}
    finally:
        sup.stop()


# -- api_keys are never logged ---------------------------------------------------------------------------


async def test_api_keys_a_bot_quotes_reach_neither_the_log_nor_the_record(tmp_path: Path) -> None:
    own = "sk-request-own-" + secrets.token_urlsafe(24)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.leaks_api_keys]\nkind = "pipecat"\nbot = "tests/bots/leaks_api_keys.py:bot"\n')
    sup = SupervisorProcess(tmp_path, None, supervisor={"profiles": str(profiles)})
    sup.start(timeout=60)
    try:
        started = await sup.start_bot("leaks_api_keys", api_keys={"openai": own})
        sid = started["session_id"]
        view = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), timeout=40)
        assert view["end_reason"] == "bot_error", view
        assert "refused with openai<[redacted]>" in view["error"], view  # the bot had the key, and quoted it
        stored = sup.stored(sid)
        assert stored is not None and own not in json.dumps(msgspec.to_builtins(stored))
        log = sup.log_path.read_text()
        assert own not in log
        assert "leaking the request's api_keys: openai<[redacted]>" in log  # the bot's own log line, scrubbed
    finally:
        sup.stop()
