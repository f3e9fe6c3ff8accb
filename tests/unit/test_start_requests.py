"""A start request is one type per origin, and its secrets are never part of it.

Whatever encodes a request -- msgspec into JSON or builtins, its repr, what its record
keeps -- finds none of the secrets the request holds: the caller's own provider keys, a
built-in pipeline's keys, a body that names its own key, a meeting token for the bot. The
bot still gets them, in memory: its configuration, its ``runner_args.body``, its keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pytest

from protocol.messages import AudioSettings
from supervisor.sessions.requests import (
    BotsStart,
    DialinSettings,
    DialinStart,
    PipecatStart,
    RequestSecrets,
    StartRequest,
)

OWN_KEY = "sk-own-" + "a1" * 12  # the caller's own key, in service_options
BODY_KEY = "body-key-" + "b2" * 12  # a key the caller's body names
PIPELINE_KEY = "sk-pipeline-" + "c3" * 12  # what a built-in pipeline is handed
BOT_TOKEN = "bot-token-" + "d4" * 12  # a meeting token the caller gave for the bot
SECRETS = (OWN_KEY, BODY_KEY, PIPELINE_KEY, BOT_TOKEN)


def held() -> RequestSecrets:
    return RequestSecrets(body={"openai_api_key": BODY_KEY, "prompt": "hello"},
                          service_options={"openai": {"api_key": OWN_KEY, "model": "gpt-4o"}},
                          provider_keys={"OPENAI_API_KEY": PIPELINE_KEY}, bot_token=BOT_TOKEN)


def bots_start() -> StartRequest:
    return BotsStart(profile="mine", kind="pipecat", profile_config={"bot": "bots/mine.py:bot"},
                     services={"llm": "openai"}, room_url="https://example.daily.co/theirs").holding(held())


def pipecat_start() -> StartRequest:
    return PipecatStart(profile="mine", kind="pipecat", room_properties={"enable_chat": True}).holding(held())


def dialin_start() -> StartRequest:
    settings = DialinSettings(call_id="call-1", call_domain="domain-1", To="+15550100", From="+15550199")
    return DialinStart(profile="phone", kind="pipecat", settings=settings,
                       daily_api_url="https://api.daily.co/v1").holding(held())


ORIGINS = [bots_start, pipecat_start, dialin_start]


def shown(request: StartRequest) -> list[str]:
    """Every way a request is written out: encoded, as builtins, its repr, its record."""
    return [msgspec.json.encode(request).decode(), json.dumps(msgspec.to_builtins(request)), repr(request),
            json.dumps(request.recorded())]


@pytest.mark.parametrize("make", ORIGINS)
def test_no_encoding_of_a_start_request_and_no_record_of_it_holds_a_secret(make: Callable[[], StartRequest]) -> None:
    request = make()
    for text in shown(request):
        for secret in SECRETS:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize("make", ORIGINS)
def test_each_origin_is_tagged_and_its_secrets_stay_with_it_in_memory(make: Callable[[], StartRequest]) -> None:
    request = make()
    assert msgspec.to_builtins(request)["origin"] in ("bots_start", "pipecat_start", "dialin_start")
    assert request.secrets.provider_keys == {"OPENAI_API_KEY": PIPELINE_KEY}
    assert set(SECRETS) <= set(request.secret_values())  # scrubbed while the session lives


def test_your_own_bot_on_daily_bots_gets_its_keys_in_its_body_and_its_config() -> None:
    request = bots_start()
    body = request.runner_body("proxy-key", "http://proxy")
    assert body["service_options"]["openai"]["api_key"] == OWN_KEY
    assert request.bot_config()["service_options"]["openai"]["api_key"] == OWN_KEY
    assert request.room_request().bot_token == BOT_TOKEN
    assert request.recorded()["daily_bots"]["service_options"] == {"openai": {"model": "gpt-4o"}}


def test_a_built_in_pipeline_gets_no_key_in_its_body() -> None:
    request = BotsStart(profile="voice_2024_10", kind="pipecat", pipeline=True).holding(held())
    assert OWN_KEY not in json.dumps(request.runner_body("proxy-key", "http://proxy"))


def test_a_pipecat_cloud_bot_gets_its_body_as_given_and_the_record_keeps_it_masked() -> None:
    request = pipecat_start()
    assert request.runner_body("proxy-key", "http://proxy") == {"openai_api_key": BODY_KEY, "prompt": "hello"}
    assert request.recorded()["body"]["prompt"] == "hello"


def test_a_dialin_bot_gets_the_call_and_the_sessions_own_proxy_key() -> None:
    request = dialin_start()
    body = request.runner_body("proxy-key", "http://proxy")
    assert body["dialin_settings"]["call_id"] == "call-1"
    assert (body["daily_api_key"], body["daily_api_url"]) == ("proxy-key", "http://proxy")
    config = request.stream_config("s1", "https://example.daily.co/room", AudioSettings())
    assert config["dialin_settings"]["From"] == "+15550199"
    assert config["body"]["daily_api_url"] == "https://api.daily.co/v1"  # a stream engine is told Daily's own
    assert request.room_request().sip is not None and not request.room_request().pooled
