"""Every option of Daily Bots' service tables is honoured or refused, never dropped.

The table is ``callfleet.options.CATALOGUE``. These tests walk all of it:

- each option the seed's document lists (transcribed below; checked against the document
  itself when it is beside the repository) has an entry for its provider;
- each honoured option, set on a request, is carried by the real Pipecat service the worker
  builds (or by the transport parameters, the context, the pipeline around it);
- each refused option is a 422 at ``/bots/start`` that names it and says why;
- the README's table is the catalogue's.

Then the behaviours around them: ``azure_tts`` without a region is a 422 at start; the
handoff mute; the vision context stays bounded; the call ends with its last participant
(with two callers on a real supervisor: one leaves and the bot goes on, the second leaves
and it ends).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

from callfleet import options as table  # noqa: E402
from callfleet.options import CATALOGUE, Honoured, Refused, Where  # noqa: E402
from callfleet.providers import PROVIDERS, ServiceType, installed  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.e2e.test_providers import RunningDaemon, _bots_start  # noqa: E402

# -- the seed's lists, transcribed ----------------------------------------------------------------
# From seed 003 ("DailyBots Server Reference"): each provider section's "Service Options" and
# "Configuration Options"/"Advanced Configuration" bullets, its JSON examples, and the Daily
# transport's parameters. TYPE_LISTS: "Common Service Options by Type" and the TTS overview's
# "Common Configuration Parameters"; they apply to every provider of the type. (The Deepgram
# TTS example writes its voice under "deepgram", which is the STT's key: kept as written.)
SEED_PROVIDER_OPTIONS: dict[str, set[str]] = {
    "aws_tts": {"aws_access_key_id", "region", "voice", "sample_rate", "engine", "language", "pitch", "rate", "volume"},
    "azure_tts": {"region", "voice", "sample_rate", "role", "style", "style_degree", "emphasis"},
    "cartesia": {"voice", "sample_rate", "model", "language", "speed", "emotion"},
    "daily": {"enable_noise_cancellation", "mute_on_third_participant_join"},
    "deepgram_tts": {"voice", "sample_rate", "text_filter"},
    "deepgram": {"language", "model", "punctuate", "voice"},
    "elevenlabs": {"voice", "output_format", "model", "language", "stability", "similarity_boost", "style",
                   "use_speaker_boost"},
    "google_tts": {"voice", "sample_rate", "language", "pitch", "rate", "volume", "emphasis"},
    "openai_tts": {"voice", "sample_rate", "model", "text_filter"},
    "playht": {"user_id", "voice", "sample_rate", "model", "language", "speed", "seed"},
    "rime": {"voice", "sample_rate", "model", "text_filter"},
    "anthropic": {"base_url", "api_version"},
    "openai": {"organization_id", "model"},
}
SEED_TYPE_OPTIONS: dict[str, set[str]] = {
    "tts": {"sample_rate", "voice", "model", "speaking_rate", "region", "language", "text_filter"},
    "llm": {"model", "base_url", "api_version", "temperature", "max_tokens", "initial_messages", "run_on_config"},
    "stt": {"language", "model", "punctuate", "profanity_filter"},
}
SEED = REPO.parent / "shared" / "seeds" / "003_6980ac26e4b214f2.txt"


def _seed_options(doc: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The option names the seed document lists, by provider and by service type."""
    by_provider: dict[str, set[str]] = {}
    for section in re.split(r"\n## ", doc):
        key = re.search(r"\*\*Configuration Key\*\*: `?\"?(\w+)", section)
        if key:
            names = set(re.findall(r"^- \*\*`(\w+)`\*\*", section, re.M))
            names |= set(re.findall(r"^- \*\*Parameter\*\*: `(\w+)`", section, re.M))
            by_provider.setdefault(key.group(1), set()).update(names)
        for provider, options in re.findall(r'"(\w+)": \{\n((?:\s+"\w+": [^\n{]*\n)+)\s+\}', section):
            if provider != "services":
                by_provider.setdefault(provider, set()).update(re.findall(r'^\s+"(\w+)":', options, re.M))
    by_type: dict[str, set[str]] = {}
    common = doc.split("### Common Service Options by Type")[1].split("### Best Practices")[0]
    for title, kind in (("Text-to-Speech", "tts"), ("Language Model", "llm"), ("Speech-to-Text", "stt")):
        block = common.split(title)[1].split("####")[0]
        by_type[kind] = set(re.findall(r"^- `(\w+)`", block, re.M))
    tts = doc.split("### Common Configuration Parameters")[1].split("### Text Filtering")[0]
    by_type["tts"] |= set(re.findall(r"^- \*\*`(\w+)`\*\*", tts, re.M))
    for kind, options in re.findall(r'"service": "(\w+)",\s+"options": \[(.*?)\n      \]', doc, re.S):
        by_type.setdefault(kind, set()).update(re.findall(r'"name": "(\w+)"', options))
    return by_provider, by_type


@pytest.mark.skipif(not SEED.exists(), reason="the seed documents are not beside the repository here")
def test_the_transcribed_lists_are_the_seed_documents() -> None:
    by_provider, by_type = _seed_options(SEED.read_text())
    assert by_provider == SEED_PROVIDER_OPTIONS
    assert by_type == SEED_TYPE_OPTIONS


def _providers_of(kind: str) -> list[str]:
    types = {"llm": (ServiceType.LLM, ServiceType.S2S)}.get(kind, (ServiceType(kind),))
    return [name for name, p in PROVIDERS.items() if p.kind in types]


def test_every_option_the_seed_lists_has_an_entry_for_its_provider() -> None:
    missing = [(p, o) for p, names in SEED_PROVIDER_OPTIONS.items() for o in names if o not in CATALOGUE[p]]
    missing += [(p, o) for kind, names in SEED_TYPE_OPTIONS.items() for p in _providers_of(kind) for o in names
                if o not in CATALOGUE[p]]
    assert missing == []


def test_every_provider_has_a_table_and_every_entry_says_where_or_why() -> None:
    assert set(CATALOGUE) == set(PROVIDERS)
    for provider, options in CATALOGUE.items():
        for name, found in options.items():
            assert isinstance(found, Honoured | Refused), (provider, name)
            assert found.path if isinstance(found, Honoured) else len(found.reason) > 20, (provider, name)
            if isinstance(found, Honoured) and found.alias_of:
                assert isinstance(options[found.alias_of], Honoured), (provider, name)


# -- honoured: the built service carries it ----------------------------------------------------------

KEY = "sk-options-test-5e1d"
BASE = {"base_url": "http://127.0.0.1:9/v1"}
SAMPLES: dict[str, Any] = {
    "model": "m-1", "language": "fr", "punctuate": True, "profanity_filter": True, "smart_format": True,
    "endpointing": 300, "temperature": 0.4, "max_tokens": 77, "top_p": 0.9, "system_prompt": "Be brief.",
    "instructions": "Be brief.", "api_version": "2023-06-01", "organization_id": "org-42", "voice": "v-1",
    "sample_rate": 24000, "speed": 1.25, "speaking_rate": 1.25, "region": "eastus", "text_filter":
    {"enable_text_filter": True, "filter_code": True, "filter_tables": False}, "emotion": "positivity",
    "output_format": "pcm_22050", "stability": 0.4, "similarity_boost": 0.7, "style": 0.2, "use_speaker_boost": True,
    "role": "Girl", "style_degree": "1.5", "emphasis": "moderate", "pitch": "+2st", "rate": "110%", "volume": "loud",
    "engine": "neural", "aws_access_key_id": "AKIAEXAMPLE", "turn_detection": False, "modalities": ["text"],
    "initial_messages": [{"role": "system", "content": "You are a test."}], "run_on_config": True,
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "The weather",
                                                  "parameters": {"type": "object", "properties": {}}}}],
    "enable_noise_cancellation": True, "mute_on_third_participant_join": True, "api_key": KEY,
}
URLS = {"deepgram": "http://127.0.0.1:9", "gladia": "http://127.0.0.1:9/v2/live",
        "cartesia": "ws://127.0.0.1:9/tts/websocket", "deepgram_tts": "ws://127.0.0.1:9",
        "elevenlabs": "ws://127.0.0.1:9", "rime": "ws://127.0.0.1:9/ws3", "openai_realtime": "ws://127.0.0.1:9/v1/realtime"}
# Where each service keeps a constructor argument the table names.
INIT_READERS: dict[tuple[str, str], Any] = {
    ("deepgram", "base_url"): lambda s: s._client._client_wrapper._environment.production,
    ("gladia", "url"): lambda s: s._url,
    ("deepgram_tts", "base_url"): lambda s: s._base_url,
    ("openai_realtime", "base_url"): lambda s: s.base_url.partition("?")[0],
    ("azure_tts", "region"): lambda s: s._region,
}


# Where a provider's range or kind of value differs from the sample above.
PROVIDER_SAMPLES: dict[tuple[str, str], Any] = {
    ("daily", "endpointing"): False, ("elevenlabs", "speed"): 1.1, ("elevenlabs", "speaking_rate"): 1.1,
    ("azure_tts", "style"): "cheerful", ("elevenlabs", "sample_rate"): 22050,
}


def _sample(provider: str, name: str) -> Any:
    if (provider, name) in PROVIDER_SAMPLES:
        return PROVIDER_SAMPLES[provider, name]
    if name == "base_url":
        return URLS.get(provider, BASE["base_url"])
    assert name in SAMPLES, f"no sample value for {name}: add one, so the walk builds {provider} with it"
    return SAMPLES[name]


HONOURED = [(p, n) for p in CATALOGUE for n, _ in table.honoured(p)]


def _read(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _required(provider: str) -> dict[str, Any]:
    """What a provider's builder needs beside the option under test."""
    return {"custom_llm": dict(BASE), "azure_tts": {"region": "westus"}}.get(provider, {})


def _build(provider: str, options: dict[str, Any]) -> Any:
    from worker.daily_bots import services

    kind = PROVIDERS[provider].kind
    options = {**_required(provider), **options}
    if kind is ServiceType.STT:
        return services.build_stt(provider, options, KEY, sample_rate=16000)
    if kind is ServiceType.TTS:
        return services.build_tts(provider, options, KEY, sample_rate=16000)
    if kind is ServiceType.LLM:
        return services.build_llm(provider, options, KEY)
    return services.build_s2s(provider, options, KEY)


def _key_of(svc: Any) -> Any:
    for path in ("_api_key", "api_key", "_client.api_key", "_client._client_wrapper.api_key"):
        try:
            value = _read(svc, path)
        except AttributeError:
            continue
        if value:
            return value
    return None


class StandInTransport:
    """Where a DailyTransport would be: input and output processors, and its participant events."""

    def __init__(self) -> None:
        from pipecat.processors.frame_processor import FrameProcessor
        from pipecat.utils.base_object import BaseObject

        class Events(BaseObject):
            def __init__(self) -> None:
                super().__init__()
                for name in ("on_first_participant_joined", "on_participant_joined", "on_participant_left"):
                    self._register_event_handler(name)

        self.events = Events()
        self.event_handler = self.events.event_handler
        self._input = FrameProcessor(name="transport-input")
        self._output = FrameProcessor(name="transport-output")
        self._present: dict[str, Any] = {}

    def input(self) -> Any:
        return self._input

    def output(self) -> Any:
        return self._output

    def participants(self) -> dict[str, Any]:
        """What a call client lists: the bot itself as "local", and who has joined and not left."""
        return {"local": {}, **self._present}

    async def fire(self, event: str, *args: Any) -> None:
        who = args[0]["id"] if args else None
        if event == "on_participant_joined":
            self._present[who] = args[0]
        elif event == "on_participant_left":
            self._present.pop(who, None)
        await self.events._call_event_handler(event, *args)
        await asyncio.sleep(0.05)  # handlers run as tasks


ALL_KEYS = {p.key_env: KEY for p in PROVIDERS.values() if p.key_env}


def _pipeline_body(provider: str, name: str, value: Any) -> dict[str, Any]:
    """An offline request whose pipeline includes ``provider`` (its LLM, for an LLM) with ``name`` set."""
    if provider == "openai_realtime":
        return {"bot_profile": "openai_realtime_beta_2024_10", "services": {"llm": provider},
                "config": [{"service": "llm", "options": [{"name": name, "value": value}]}]}
    llm = provider if PROVIDERS[provider].kind is ServiceType.LLM else "custom_llm"
    options: dict[str, Any] = {"custom_llm": dict(BASE)}
    options[provider] = {**options.get(provider, {}), name: value}
    return {"bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": llm, "tts": "openai_tts"},
            "service_options": options}


def _built_pipeline(body: dict[str, Any]) -> Any:
    from worker.daily_bots import realtime, voice
    from worker.daily_bots.request import parse_request

    request = parse_request(body, keys=ALL_KEYS)
    module = realtime if body["bot_profile"] == "openai_realtime_beta_2024_10" else voice
    return module.build(request, StandInTransport())


@pytest.mark.parametrize(("provider", "name"), HONOURED, ids=[f"{p}.{n}" for p, n in HONOURED])
def test_each_honoured_option_is_carried_by_what_the_worker_builds(
        provider: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = CATALOGUE[provider][name]
    assert isinstance(found, Honoured)
    value = _sample(provider, name)
    expected = found.check(value)
    dist = PROVIDERS[provider].distribution
    if dist and not installed(dist):
        _check_against_source(provider, found)
        pytest.skip(f"{PROVIDERS[provider].extra} not installed: checked against Pipecat's source only")
    if found.where is Where.KEY:
        assert _key_of(_build(provider, {})) == KEY  # the session's key (never an option: see test_providers)
        return
    if found.where is Where.CONVERSATION:
        built = _built_pipeline(_pipeline_body(provider, name, value))
        if name == "initial_messages":
            assert built.context.get_messages() == value
        elif name == "run_on_config":
            assert built.request.run_on_config is True
        else:
            assert [f.name for f in built.context.tools.standard_tools] == ["get_weather"]
        return
    if found.where is Where.TRANSPORT:
        from worker.daily_bots import pipeline
        from worker.daily_bots.request import parse_request

        request = parse_request(_pipeline_body(provider, name, value), keys=ALL_KEYS)
        if name == "enable_noise_cancellation":
            from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter

            monkeypatch.setattr(pipeline, "installed", lambda dist: True)  # the filter builds without pyrnnoise
            assert isinstance(pipeline.daily_params(request, audio_out_rate=24000).audio_in_filter, RNNoiseFilter)
        else:
            built = _built_pipeline(_pipeline_body(provider, name, value))
            assert built.handoff is not None
            assert built.processors[1] is built.handoff.inbound and built.processors[-3] is built.handoff.outbound
        return
    if found.where is Where.TRANSCRIPTION:
        from pipecat.transports.daily.transport import DailyTranscriptionSettings

        from worker.daily_bots.services import daily_transcription

        settings = DailyTranscriptionSettings(**daily_transcription({name: value}))
        assert _read(settings, found.path) == expected
        return
    svc = _build(provider, {name: value})
    if found.where is Where.SETTINGS:
        got = _read(svc._settings, found.path)
        if found.path == "language":  # some services keep their own code for it (Rime: fra)
            assert str(got).startswith(expected[:2]), (got, expected)
        else:
            assert got == expected, (got, expected)
    elif found.where is Where.CLIENT:
        if name == "base_url":
            assert str(svc._client.base_url).rstrip("/") == value.rstrip("/")
        else:
            assert svc._client._custom_headers["anthropic-version"] == value
    elif found.path == "sample_rate":
        assert svc._init_sample_rate == expected
    elif found.path == "text_filters":
        [markdown] = svc._text_filters
        assert markdown._settings.model_dump(include=set(value)) == value
    elif found.path == "organization":
        assert svc._client.organization == value
    elif (provider, found.path) in INIT_READERS:
        assert INIT_READERS[provider, found.path](svc).rstrip("/") == value.rstrip("/").replace("http://", "ws://") \
            or INIT_READERS[provider, found.path](svc).rstrip("/") == value.rstrip("/")
    elif found.path in ("url", "base_url"):
        where = svc._url if hasattr(svc, "_url") else str(svc._client.base_url)
        assert where.rstrip("/") == value.rstrip("/")
    else:
        raise AssertionError(f"{provider}.{name}: the walk does not know where {found.target} is kept")


def _check_against_source(provider: str, found: Honoured) -> None:
    """For a provider whose extra is not installed here: its Pipecat module's source has the
    ``Settings`` field or constructor argument the table names."""
    entry = PROVIDERS[provider]
    assert entry.module is not None and entry.cls is not None
    spec = importlib.util.find_spec("pipecat")
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).parent.joinpath(*entry.module.split(".")[1:]).with_suffix(".py").read_text()
    tree = ast.parse(source)
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    service = classes[entry.cls]
    fields = {t.target.id for c in classes.values() if c.name.endswith("Settings")
              for t in c.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)}
    init = next(f for f in service.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    arguments = {a.arg for a in init.args.kwonlyargs + init.args.args}
    if found.where is Where.SETTINGS:
        assert found.path.split(".")[0] in fields | {"model", "voice", "language", "system_instruction",
                                                     "temperature", "max_tokens", "top_p"}, found.path
    elif found.where is Where.INIT:
        assert found.path in arguments | {"text_filters", "sample_rate"}, (found.path, arguments)


# -- refused: a 422 that names it --------------------------------------------------------------------

REFUSED = [(p, n) for p, names in CATALOGUE.items() for n, found in names.items() if isinstance(found, Refused)]
# Another provider's option of the same service type, named on this one: refused too (generated).
SIBLINGS = sorted({(p, n) for p in CATALOGUE for q in CATALOGUE if q != p and PROVIDERS[q].kind == PROVIDERS[p].kind
                   for n, found in CATALOGUE[q].items() if isinstance(found, Honoured) and n not in CATALOGUE[p]})


def _start_body(provider: str, options: dict[str, Any]) -> dict[str, Any]:
    kind = PROVIDERS[provider].kind
    if kind is ServiceType.S2S:
        return {"bot_profile": "openai_realtime_beta_2024_10", "services": {"llm": provider},
                "service_options": {provider: options}}
    services = {} if provider == "daily" else {kind.value: provider}
    return {"bot_profile": "voice_2024_10", "services": services, "service_options": {provider: options}}


@pytest.mark.parametrize(("provider", "name"), REFUSED + SIBLINGS,
                         ids=[f"{p}.{n}" for p, n in REFUSED + SIBLINGS])
async def test_each_refused_option_is_a_422_naming_it_and_why(provider: str, name: str) -> None:
    found = table.entry(provider, name)
    assert isinstance(found, Refused)
    daemon = RunningDaemon({k: "k" for k in ("DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY", "CARTESIA_API_KEY")})
    status, reply = await _bots_start(daemon, _start_body(provider, {name: SAMPLES.get(name, "x")}))
    assert status == 422, reply
    assert f"service_options.{provider}.{name}: {name} is refused for {provider}: {found.reason}" in reply["info"]
    assert daemon.registry.started == []


async def test_a_refused_option_in_config_is_a_422_naming_its_path() -> None:
    body = {"bot_profile": "openai_realtime_beta_2024_10", "services": {"llm": "openai_realtime"},
            "config": [{"service": "llm", "options": [{"name": "model", "value": "gpt-realtime"},
                                                      {"name": "temperature", "value": 0.7}]}]}
    status, reply = await _bots_start(RunningDaemon({"OPENAI_API_KEY": KEY}), body)
    assert status == 422 and reply["info"].startswith("config[0].options[1]: temperature is refused for "
                                                      "openai_realtime: OpenAI's Realtime API"), reply


@pytest.mark.parametrize(("body", "says"), [
    ({"services": {"tts": "cartesia"}, "config": [{"service": "tts", "options": [{"name": "emotion",
                                                                                   "value": ["positivity:high"]}]}]},
     "config[0].options[0]: emotion: emotion levels"),
    ({"services": {"tts": "cartesia"}, "service_options": {"cartesia": {"speed": "warp"}}},
     "service_options.cartesia.speed: speed: expected a number from 0.6 to 1.5 or one of slowest"),
    ({"services": {"tts": "openai_tts"}, "service_options": {"openai_tts": {"speed": 1.1, "speaking_rate": 1.2}}},
     "speaking_rate: openai_tts takes it as speed; give one of them"),
    ({"config": [{"service": "stt", "options": [{"name": "enable_noise_cancellation", "value": True}]}]},
     "enable_noise_cancellation is the room's option"),
    ({"config": [{"service": "s2s", "options": [{"name": "model", "value": "m"}]}]},
     "config[0].service: profile voice_2024_10 runs no s2s service"),
    ({"service_options": {"cartesia": {"frobnicate": 1}}}, "service_options.cartesia.frobnicate: unknown option"),
    ({"services": {"tts": "elevenlabs"}, "config": [{"service": "tts", "options": [{"name": "sample_rate",
                                                                                    "value": 8000}]}]},
     "sample_rate: expected one of 16000, 22050, 24000, 44100"),
])
async def test_a_bad_value_an_alias_twice_or_a_misplaced_option_is_a_422_saying_so(
        body: dict[str, Any], says: str) -> None:
    daemon = RunningDaemon({k: "k" for k in ("DEEPGRAM_API_KEY", "ANTHROPIC_API_KEY", "CARTESIA_API_KEY",
                                             "OPENAI_API_KEY", "ELEVENLABS_API_KEY")})
    status, reply = await _bots_start(daemon, {"bot_profile": "voice_2024_10", **body})
    assert status == 422 and says in reply["info"], reply


async def test_service_options_daily_is_accepted_and_its_filter_needs_the_rnnoise_extra() -> None:
    daemon = RunningDaemon({"OPENAI_API_KEY": KEY})
    body = {"bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
            "service_options": {"custom_llm": dict(BASE), "daily": {"mute_on_third_participant_join": True}}}
    status, reply = await _bots_start(daemon, body)
    assert status == 429, reply  # past every check, into the (stand-in, full) pool
    body["service_options"]["daily"]["enable_noise_cancellation"] = True
    status, reply = await _bots_start(daemon, body)
    if installed("pyrnnoise"):
        assert status == 429, reply
    else:
        assert status == 422 and "enable_noise_cancellation: install pipecat-ai[rnnoise]" in reply["info"], reply


async def test_azure_tts_without_a_region_is_a_422_at_start() -> None:
    body = {"bot_profile": "voice_2024_10", "services": {"stt": "daily", "llm": "custom_llm", "tts": "azure_tts"},
            "service_options": {"custom_llm": dict(BASE), "azure_tts": {"api_key": KEY}}}
    status, reply = await _bots_start(RunningDaemon(), body)
    assert status == 422 and "service_options.azure_tts.region: required for azure_tts" in reply["info"], reply
    status, _ = await _bots_start(RunningDaemon({"AZURE_SPEECH_REGION": "eastus"}), body)
    assert status == 429
    body["service_options"]["azure_tts"]["region"] = "westeurope"
    status, _ = await _bots_start(RunningDaemon(), body)
    assert status == 429


def test_the_readme_table_is_the_catalogues() -> None:
    assert table.markdown_table() in (REPO / "README.md").read_text()


# -- the handoff mute and the last participant --------------------------------------------------------

async def test_the_call_ends_with_its_last_participant_not_its_first() -> None:
    from worker.daily_bots.participants import Participants

    ended: list[bool] = []

    async def end() -> None:
        ended.append(True)

    participants = Participants(end)
    await participants.joined({"id": "a"})
    await participants.joined({"id": "b"})
    await participants.left({"id": "a"})
    assert ended == []
    await participants.left({"id": "b"})
    assert ended == [True]


async def test_a_participant_in_the_call_before_its_events_were_watched_still_counts() -> None:
    """The pipeline starts watching after the bot joined: a caller already there raised its
    joined event before anyone listened, but the call client still lists it."""
    from worker.daily_bots.participants import Participants

    ended: list[bool] = []
    in_call = {"early", "late"}

    async def end() -> None:
        ended.append(True)

    participants = Participants(end, roster=lambda: set(in_call))
    await participants.joined({"id": "late"})
    in_call.discard("late")
    await participants.left({"id": "late"})
    assert ended == []  # "early" never announced itself here, and is still in the call
    in_call.discard("early")
    await participants.left({"id": "early"})
    assert ended == [True]


async def test_a_third_participant_mutes_the_bot_both_ways_for_the_rest_of_the_call() -> None:
    from pipecat.frames.frames import (
        InputAudioRawFrame,
        InterruptionFrame,
        TextFrame,
        TranscriptionFrame,
        TTSAudioRawFrame,
    )
    from pipecat.tests.utils import run_test

    built = _built_pipeline(_pipeline_body("daily", "mute_on_third_participant_join", True))
    transport = StandInTransport()
    from worker.daily_bots.participants import watch

    cancelled: list[bool] = []

    async def cancel() -> None:
        cancelled.append(True)

    handoff = built.handoff
    watch(transport, cancel, handoff)
    audio = InputAudioRawFrame(audio=bytes(320), sample_rate=16000, num_channels=1)
    said = TranscriptionFrame(text="hello", user_id="u", timestamp="now")
    await transport.fire("on_participant_joined", {"id": "caller"})
    assert not handoff.muted  # the bot and its caller: two participants
    heard, _ = await run_test(handoff.inbound, frames_to_send=[audio, said],
                              expected_down_frames=[InputAudioRawFrame, TranscriptionFrame])
    await transport.fire("on_participant_joined", {"id": "agent"})
    assert handoff.muted
    heard, _ = await run_test(handoff.inbound, frames_to_send=[audio, said, TextFrame(text="app")],
                              expected_down_frames=None)
    # the callers' audio and words stop here; anything else (an RTVI message) goes on
    assert [type(f) for f in heard if not isinstance(f, InterruptionFrame)] == [TextFrame]
    spoken, _ = await run_test(handoff.outbound, frames_to_send=[TTSAudioRawFrame(bytes(320), 24000, 1)],
                               expected_down_frames=[])
    await transport.fire("on_participant_left", {"id": "agent"}, "left")
    assert handoff.muted and cancelled == []  # a handoff is not undone
    await transport.fire("on_participant_left", {"id": "caller"}, "left")
    assert cancelled == [True]


async def test_muting_interrupts_what_the_bot_is_saying_once() -> None:
    from pipecat.frames.frames import InterruptionWorkerFrame
    from pipecat.processors.frame_processor import FrameDirection

    from worker.daily_bots.participants import HandoffMute

    handoff = HandoffMute()
    pushed: list[tuple[Any, FrameDirection]] = []

    async def push_frame(frame: Any, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        pushed.append((frame, direction))

    handoff.inbound.push_frame = push_frame  # type: ignore[method-assign]
    await handoff.mute()
    await handoff.mute()
    assert [(type(f), d) for f, d in pushed] == [(InterruptionWorkerFrame, FrameDirection.UPSTREAM)]


# -- the vision context stays bounded -----------------------------------------------------------------

async def test_a_long_vision_call_keeps_only_the_last_images() -> None:
    from pipecat.frames.frames import LLMContextFrame, UserImageRawFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.tests.utils import SleepFrame, run_test

    from worker.daily_bots.vision import MAX_IMAGES, CameraContext

    context = LLMContext(messages=[{"role": "system", "content": "You can see."}])
    frames: list[Any] = []
    turns = 3 * MAX_IMAGES + 2  # each turn: the user speaks, a new camera frame, the bot answers
    for turn in range(turns):
        context.add_message({"role": "user", "content": f"turn {turn}"})
        frames += [UserImageRawFrame(image=bytes([turn]) * (4 * 4 * 3), size=(4, 4), format="RGB", user_id="u"),
                   SleepFrame(sleep=0.01), LLMContextFrame(context), SleepFrame(sleep=0.01)]
    camera = CameraContext()
    await run_test(camera, frames_to_send=frames, expected_down_frames=[LLMContextFrame] * turns)
    messages = context.get_messages()
    images = [m for m in messages if isinstance(m["content"], list)
              and any(p.get("type") == "image_url" for p in m["content"])]
    assert len(images) == MAX_IMAGES
    # every turn's words stay; only the oldest frames went
    assert [m["content"] for m in messages if isinstance(m["content"], str)] == \
        ["You can see.", *(f"turn {t}" for t in range(turns))]
    assert messages[-1] is images[-1]  # the newest frame is the one this turn added


# -- two callers on a real supervisor ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.supervisor_harness import SupervisorProcess

    proc = SupervisorProcess(tmp_path_factory.mktemp("daily-bots-options"), None,
                             supervisor={"profiles": str(REPO / "configs" / "profiles.toml")},
                             sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    proc.start(timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
async def openai() -> AsyncIterator[Any]:
    from tests.doubles.openai_server import FakeOpenAI

    server = FakeOpenAI()
    await server.start()
    yield server
    await server.stop()


async def test_with_two_callers_one_leaving_the_bot_goes_on_and_the_second_leaving_ends_it(
        sup: Any, openai: Any) -> None:
    from sandbox.caller import Caller, CallerOptions

    body = {"services": {"stt": "daily", "llm": "custom_llm", "tts": "openai_tts"},
            "config": [{"service": "llm", "options": [{"name": "model", "value": "local-model"}]}],
            "service_options": {"custom_llm": {"base_url": openai.base_url, "api_key": "any"},
                                "openai_tts": {"base_url": openai.base_url, "api_key": "any"}}}
    bot = await sup.start_bot("voice_2024_10", **body)
    sid = bot["session_id"]
    first, second = (Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None,
                                          markers=False, user_name=name)) for name in ("first", "second"))
    await first.join()
    await second.join()
    try:
        await sup.wait_session(sid, lambda d: d["state"] == "joined" and len(d["participants"]) >= 3, 20,
                               "the bot and both callers in the room")
        await first.conn.leave()
        await asyncio.sleep(2.0)  # long enough for a pipeline cancelled on the first leave to end the session
        assert (await sup.session(sid))["state"] == "joined"
        await second.conn.request("say", text="Are you still there?", is_final=True)
        for _ in range(150):  # the bot still hears the caller who stayed, and asks its LLM
            if openai.chats:
                break
            await asyncio.sleep(0.1)
        assert openai.chats, "the bot did not hear the caller who stayed"
    finally:
        await second.conn.leave()
    ended = await sup.wait_session(sid, lambda d: d["state"] in ("ended", "failed"), 20, "the session's end")
    assert ended["state"] == "ended", ended


def test_cartesias_named_speeds_of_its_retired_api_become_sonic_3_multipliers() -> None:
    from callfleet.options import cartesia_speed

    assert [cartesia_speed(name) for name in ("slowest", "slow", "normal", "fast", "fastest")] == [0.6, 0.8, 1.0, 1.2,
                                                                                                   1.5]
    assert cartesia_speed(1.1) == 1.1
    with pytest.raises(ValueError, match="or one of slowest"):
        cartesia_speed(2.0)
