"""sandbox.client is daily-python's API: the same public names, and for every class and
function both expose the same constructor and method signatures -- parameter names,
order, kinds and defaults -- as the installed daily-python; and everything Pipecat's
DailyTransport takes from ``daily`` exists in sandbox.client and accepts Pipecat's calls.

How daily's signatures are read: daily is a native (pyo3) module, yet every constructor
and method it lets Python call carries ``__text_signature__``, so ``inspect.signature``
reads them: on the class for a constructor (``CallClient`` -> ``(event_handler=None)``),
on the method descriptor for a method (``($self, meeting_url, ...)``, ``self``
positional-only, dropped before comparing), on ``Daily``'s static methods as they are.
A class whose instances only daily makes (``AudioData``, ``VideoFrame``, the virtual
devices...) has no constructor signature and raises TypeError when called: ours must
refuse too. Attributes are getset descriptors in daily: ours must be properties.
The stub ``daily/__init__.pyi`` is not used: it is written by hand and disagrees with the
binary (``add_live_streaming_endpoings``, ``send_app_message(serialize_none=)``,
``create_native_vad(reset_period_ms=500)``, ``NativeVad.rest_period_ms``).

Fails when daily grows a name or changes a signature that sandbox.client does not follow.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import daily
import pytest

import sandbox.client as sandbox_client
from sandbox.rooms.participants import Dial

# Deliberate differences: (class, member) -> why. Empty members are compared as usual.
DELIBERATE: dict[tuple[str, str], str] = {
    ("LogLevel", "__init__"): "an enum.Enum: LogLevel(3) looks a level up by number, which daily's "
                              "pyo3 enum cannot; LogLevel() still raises TypeError",
}


def _daily_names() -> list[str]:
    return sorted(n for n in dir(daily) if not n.startswith("_") and n != "daily")


def _params(sig: inspect.Signature) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter, without a leading ``self``."""
    params = list(sig.parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind.name, p.default) for p in params]


def _real_constructor(cls: type) -> inspect.Signature | None:
    """daily's constructor signature, or None for a class Python cannot create."""
    try:
        return inspect.signature(cls)
    except ValueError:
        return None


def test_every_public_name_of_daily_exists_in_sandbox_client() -> None:
    missing = [n for n in _daily_names() if not hasattr(sandbox_client, n)]
    assert not missing, f"sandbox.client lacks {missing}"
    assert sorted(sandbox_client.__all__) == _daily_names()


@pytest.mark.parametrize("name", [n for n in _daily_names() if isinstance(getattr(daily, n), type)])
def test_constructor_takes_the_same_parameters_as_daily(name: str) -> None:
    real, ours = getattr(daily, name), getattr(sandbox_client, name)
    if (name, "__init__") in DELIBERATE:
        return
    sig = _real_constructor(real)
    if sig is None:
        with pytest.raises(TypeError, match="cannot create"):
            real()
        with pytest.raises(TypeError, match="cannot create"):
            ours()
        return
    assert _params(inspect.signature(ours)) == _params(sig), f"{name}{inspect.signature(ours)} != {name}{sig}"


@pytest.mark.parametrize("name", [n for n in _daily_names() if isinstance(getattr(daily, n), type)])
def test_every_member_has_the_same_signature_as_daily(name: str) -> None:
    real, ours = getattr(daily, name), getattr(sandbox_client, name)
    for member in sorted(m for m in dir(real) if not m.startswith("_")):
        if (name, member) in DELIBERATE:
            continue
        assert hasattr(ours, member), f"sandbox.client.{name} lacks {member}"
        real_attr = inspect.getattr_static(real, member)
        our_attr = inspect.getattr_static(ours, member)
        if isinstance(real_attr, real):  # an enum member (LogLevel.Info)
            assert int(getattr(ours, member)) == int(real_attr), f"{name}.{member}"
        elif inspect.isgetsetdescriptor(real_attr):
            assert isinstance(our_attr, property), f"{name}.{member} must be a property, like daily's"
        else:
            real_sig = inspect.signature(getattr(real, member))
            our_sig = inspect.signature(getattr(ours, member))
            assert isinstance(our_attr, staticmethod) == isinstance(real_attr, staticmethod), \
                f"{name}.{member}: static in one, not the other"
            assert _params(our_sig) == _params(real_sig), f"{name}.{member}{our_sig} != {real_sig}"


def test_log_levels_are_daily_s_and_only_a_log_level_is_taken() -> None:
    assert [(m.name, int(m)) for m in sandbox_client.LogLevel] == [
        (n, int(getattr(daily.LogLevel, n))) for n in ("Off", "Error", "Warn", "Info", "Debug", "Trace")]
    assert str(sandbox_client.LogLevel.Info) == str(daily.LogLevel.Info) == "LogLevel.Info"
    sandbox_client.Daily.set_log_level(sandbox_client.LogLevel.Debug)
    with pytest.raises(TypeError, match="not an instance of 'LogLevel'"):
        sandbox_client.Daily.set_log_level(3)


# -- what Pipecat's DailyTransport uses ----------------------------------------------------

PIPECAT_SPEC = importlib.util.find_spec("pipecat")
needs_pipecat = pytest.mark.skipif(PIPECAT_SPEC is None, reason="pipecat-ai is not installed (the pipecat extra)")
# Methods Pipecat calls on objects it holds (not on CallClient or Daily): the class they belong to.
HELD_OBJECTS = {"read_frames": "VirtualSpeakerDevice", "write_frames": "CustomAudioSource",
                "write_frame": "CustomVideoSource"}


class PipecatUse:
    """What ``pipecat/transports/daily/transport.py`` takes from ``daily``, read from its
    source: imported names, and each call made on them (as (target, n args, keywords))."""

    def __init__(self) -> None:
        assert PIPECAT_SPEC is not None and PIPECAT_SPEC.submodule_search_locations
        path = Path(next(iter(PIPECAT_SPEC.submodule_search_locations))) / "transports/daily/transport.py"
        tree = ast.parse(path.read_text())
        self.imported: dict[str, str] = {}  # local name -> daily name
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "daily":
                for alias in node.names:
                    self.imported[alias.asname or alias.name] = alias.name
        self.calls: list[tuple[str, str, int, list[str]]] = []  # (class, member, args, keywords)
        client_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DailyTransportClient")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                target = self._target(node.func, inside_client=False)
                if target:
                    self.calls.append((*target, len(node.args), [k.arg for k in node.keywords if k.arg]))
        for node in ast.walk(client_class):
            if isinstance(node, ast.Call):
                target = self._target(node.func, inside_client=True)
                if target:
                    self.calls.append((*target, len(node.args), [k.arg for k in node.keywords if k.arg]))

    def _target(self, func: ast.expr, inside_client: bool) -> tuple[str, str] | None:
        if not inside_client:
            if isinstance(func, ast.Name) and func.id in self.imported:
                return self.imported[func.id], "__init__"
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in self.imported:
                return self.imported[func.value.id], func.attr
            return None
        if not isinstance(func, ast.Attribute):
            return None
        owner = func.value
        if (isinstance(owner, ast.Attribute) and owner.attr == "_client"
                and isinstance(owner.value, ast.Name) and owner.value.id == "self"):
            return "CallClient", func.attr
        if func.attr in HELD_OBJECTS:
            return HELD_OBJECTS[func.attr], func.attr
        return None


@needs_pipecat
def test_every_name_pipecat_imports_from_daily_exists_in_both() -> None:
    use = PipecatUse()
    assert set(use.imported.values()) >= {"CallClient", "CustomAudioSource", "Daily", "EventHandler",
                                          "LogLevel", "VirtualSpeakerDevice", "VideoFrame"}
    for name in use.imported.values():
        assert hasattr(daily, name), name
        assert hasattr(sandbox_client, name), f"Pipecat imports daily.{name}; sandbox.client lacks it"


@needs_pipecat
def test_every_call_pipecat_makes_binds_to_sandbox_client_as_to_daily() -> None:
    use = PipecatUse()
    called = {(cls, member) for cls, member, _, _ in use.calls}
    # The calls the reference lists (pipecat.md), found in the source: the parse sees them.
    assert {("CallClient", m) for m in ("join", "leave", "release", "set_audio_renderer", "set_video_renderer",
                                        "add_custom_audio_track", "update_inputs", "send_app_message",
                                        "start_dialout", "sip_refer", "update_remote_participants")} <= called
    assert {("CustomAudioSource", "__init__"), ("Daily", "create_speaker_device"),
            ("Daily", "select_speaker_device"), ("VirtualSpeakerDevice", "read_frames")} <= called
    for cls, member, n_args, keywords in use.calls:
        for module in (daily, sandbox_client):
            owner = getattr(module, cls)
            fn = owner if member == "__init__" else getattr(owner, member, None)
            assert fn is not None, f"{module.__name__}.{cls} lacks {member}, which Pipecat calls"
            sig = inspect.signature(fn)
            # Taken from the class, a method wants its self too; constructors and statics not.
            needs_self = member != "__init__" and not isinstance(inspect.getattr_static(owner, member), staticmethod)
            args = [object()] * (n_args + needs_self)
            try:
                sig.bind(*args, **{k: object() for k in keywords})
            except TypeError as exc:
                pytest.fail(f"Pipecat's call {cls}.{member}({n_args} args, {keywords}) does not bind to "
                            f"{module.__name__}: {exc}")


# -- the VAD ----------------------------------------------------------------------------------

def test_the_sandbox_vad_hears_speech_and_not_silence() -> None:
    import numpy as np

    vad = sandbox_client.Daily.create_native_vad(1000, 16000, 1)
    assert (vad.reset_period_ms, vad.sample_rate, vad.channels) == (1000, 16000, 1)
    t = np.arange(160) / 16000
    voiced = (np.sin(2 * np.pi * 200 * t) * 8000).astype("<i2").tobytes()
    assert [vad.analyze_frames(bytes(320)) for _ in range(5)] == [0.0] * 5
    assert [vad.analyze_frames(voiced) for _ in range(10)][-1] > 0.9


REAL_VAD = """
import json, daily, numpy as np
daily.Daily.init()
vad = daily.Daily.create_native_vad(1000, 16000, 1)
t = np.arange(160) / 16000
vowel = sum(np.sin(2 * np.pi * f * t) * a for f, a in ((150, 6000), (300, 4000), (450, 3000), (700, 2000)))
silence = [vad.analyze_frames(bytes(320)) for _ in range(5)]
speech = [vad.analyze_frames(vowel.astype("<i2").tobytes()) for _ in range(10)]
print(json.dumps({"silence": silence, "speech": speech, "rate": vad.sample_rate}))
"""


def test_the_real_daily_vad_runs_offline() -> None:
    """daily-python's native VAD, exercised for real (in its own process: one Daily.init each)."""
    result = subprocess.run([sys.executable, "-c", REAL_VAD], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rate"] == 16000
    assert max(out["silence"]) == 0.0
    assert max(out["speech"]) > 0.5


# -- how many arguments each callback gets ---------------------------------------------------------

# daily documents each completion in its method's docstring: "An optional completion callback
# with two parameters: (session_id, :ref:`CallClientError`)".
COMPLETION_DOC = re.compile(r"completion callback with (\w+) parameters?: \(([^)]*)\)")
NUMBERS = {"one": 1, "two": 2, "three": 3}


def _documented_completions() -> dict[tuple[str, str], int]:
    """(class, method) -> how many arguments daily passes that method's completion."""
    found: dict[tuple[str, str], int] = {}
    for name in _daily_names():
        cls = getattr(daily, name)
        if not isinstance(cls, type):
            continue
        for member in dir(cls):
            doc = getattr(getattr(cls, member), "__doc__", None) or ""
            match = COMPLETION_DOC.search(doc) if not member.startswith("_") else None
            if match:
                count = NUMBERS[match.group(1)]
                assert count == len(match.group(2).split(",")), f"{name}.{member}: {match.group(0)}"
                found[(name, member)] = count
    return found


class Callers:
    """What each completion-taking method is called with, in a call or out of one: enough to
    reach its completion, whatever that completion then reports."""

    def __init__(self, room_url: str, token: str | None) -> None:
        self.room_url, self.token = room_url, token
        self.audio_track = sandbox_client.CustomAudioTrack(sandbox_client.CustomAudioSource(16000, 1))
        self.video_track = sandbox_client.CustomVideoTrack(sandbox_client.CustomVideoSource(16, 16))
        self.source = sandbox_client.CustomAudioSource(16000, 1)
        self.microphone = sandbox_client.Daily.create_microphone_device("arity-mic", 16000, 1, non_blocking=True)
        self.speaker = sandbox_client.Daily.create_speaker_device("arity-speaker", 16000, 1, non_blocking=True)
        # CallClient method -> its arguments before the completion
        self.call_client: dict[str, tuple[Any, ...]] = {
            "join": (room_url, token), "add_custom_audio_track": ("arity-audio", self.audio_track),
            "update_custom_audio_track": ("arity-audio", self.audio_track), "remove_custom_audio_track": ("arity-audio",),
            "add_custom_video_track": ("arity-video", self.video_track),
            "update_custom_video_track": ("arity-video", self.video_track), "remove_custom_video_track": ("arity-video",),
            "send_app_message": ({"arity": 1},), "send_prebuilt_chat_message": ("arity",),
            "start_recording": (), "update_recording": ({},), "stop_recording": (),
            "start_transcription": (), "update_transcription": (), "stop_transcription": (),
            "start_live_stream_with_endpoints": (["arity"],), "start_live_stream_with_rtmp_urls": (["rtmp://arity"],),
            "add_live_streaming_endpoints": (["arity"],), "remove_live_streaming_endpoints": (["arity"],),
            "update_live_stream": ({},), "stop_live_stream": (),
            "start_dialout": ({"phoneNumber": "+15550100"},), "send_dtmf": ({"sessionId": "nobody", "tones": "1"},),
            "sip_call_transfer": ({"sessionId": "nobody", "toEndPoint": "sip:x"},),
            "sip_refer": ({"sessionId": "nobody", "toEndPoint": "sip:x"},), "stop_dialout": ("nobody",),
            "update_inputs": ({"camera": False},), "update_publishing": ({},), "update_subscriptions": ({},),
            "update_subscription_profiles": ({},), "update_permissions": ({},),
            "update_remote_participants": ({},), "eject_remote_participants": (["nobody"],),
            "set_ice_config": (), "set_proxy_url": (),
            "leave": (),  # last: the others are made in the call
        }

    def call(self, client: Any, cls: str, member: str, completion: Any) -> None:
        if cls == "CallClient":
            getattr(client, member)(*self.call_client[member], completion=completion)
        elif (cls, member) == ("CustomAudioSource", "write_frames"):
            self.source.write_frames(bytes(320), completion=completion)
        elif (cls, member) == ("VirtualMicrophoneDevice", "write_frames"):
            self.microphone.write_frames(bytes(320), completion=completion)
        elif (cls, member) == ("VirtualSpeakerDevice", "read_frames"):
            self.speaker.read_frames(160, completion=completion)
        else:
            pytest.fail(f"daily's {cls}.{member} takes a completion: say here how to call it")


async def _completion_arity(call: Any) -> int:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[int] = loop.create_future()

    def completion(*args: Any) -> None:
        loop.call_soon_threadsafe(lambda: got.done() or got.set_result(len(args)))

    call(completion)
    return await asyncio.wait_for(got, 10)


def test_daily_documents_the_completions_it_calls_with_a_value_first() -> None:
    documented = _documented_completions()
    assert documented[("CallClient", "start_dialout")] == 2  # (session_id, error)
    assert documented[("CallClient", "start_recording")] == 2  # (stream_id, error)
    assert documented[("CallClient", "join")] == 2 and documented[("CallClient", "leave")] == 1


@pytest.mark.parametrize("in_call", [False, True], ids=["out-of-a-call", "in-a-call"])
async def test_every_completion_gets_as_many_arguments_as_daily_passes(in_call: bool, rest: Any) -> None:
    """Success and error alike: Pipecat unpacks ``(session_id, error) = …`` from start_dialout."""
    from tests.sdk_client import ensure_sdk

    ensure_sdk()
    room = await rest.ok("POST", "/rooms", json={"name": "arity", "properties": {
        "enable_recording": "cloud", "enable_dialout": True}})
    token = (await rest.ok("POST", "/meeting-tokens", json={"properties": {"room_name": "arity", "is_owner": True}}))["token"]
    callers = Callers(room["url"], token)
    client = sandbox_client.CallClient()
    documented = _documented_completions()
    assert {m for c, m in documented if c == "CallClient"} == set(callers.call_client)
    if in_call:
        data_and_error = await _completion_arity(lambda done: client.join(room["url"], token, completion=done))
        assert data_and_error == 2
    wrong = {}
    for (cls, member), expected in sorted(documented.items(), key=lambda item: item[0][1] == "leave"):
        got = await _completion_arity(lambda done, cls=cls, member=member: callers.call(client, cls, member, done))
        if got != expected:
            wrong[f"{cls}.{member}"] = f"{got} arguments, daily passes {expected}"
    client.release()
    assert wrong == {}


@needs_pipecat
async def test_pipecat_unpacks_what_dial_out_and_recording_complete_with(rest: Any) -> None:
    """Pipecat's own completion plumbing, as its DailyTransportClient uses it: ``session_id,
    error = await future`` raised TypeError while the sandbox passed the error alone."""
    from pipecat.transports.daily.transport import completion_callback

    from tests.sdk_client import ensure_sdk

    ensure_sdk()
    room = await rest.ok("POST", "/rooms", json={"name": "pipecat-ops", "properties": {
        "enable_recording": "cloud", "enable_dialout": True}})
    token = (await rest.ok("POST", "/meeting-tokens", json={"properties": {"room_name": "pipecat-ops",
                                                                           "is_owner": True}}))["token"]
    client = sandbox_client.CallClient()
    loop = asyncio.get_running_loop()

    async def pipecat_call(method: str, *args: Any) -> Any:
        future: asyncio.Future[Any] = loop.create_future()
        getattr(client, method)(*args, completion=completion_callback(future))
        return await asyncio.wait_for(future, 10)

    data, error = await pipecat_call("join", room["url"], token, None)
    assert error is None
    session_id, error = await pipecat_call("start_dialout", {"phoneNumber": "+15550100"})
    assert error is None and isinstance(session_id, str) and session_id
    stream_id, error = await pipecat_call("start_recording", None, "pipecat-stream", None)
    assert (stream_id, error) == ("pipecat-stream", None)
    session_id, error = await pipecat_call("start_dialout", {})
    assert session_id is None and error
    client.release()


# Emitters of events, by the name of the function called: the event's name is the first
# argument naming an event, and its arguments follow it. Events reach a CallClient through
# these alone (the room server's ``event``/``broadcast``, the client's ``_emit``);
# ``_settings_done(name, value, completion)`` emits ``name`` with ``value``.
EMITTERS: dict[str, int | None] = {"_emit": None, "event": None, "broadcast": None, "_settings_done": 1}
# An event named by an f-string: what its formatted part can be.
FORMATTED = {"p.dial.value": [d.value for d in Dial]}


def _event_names(arg: ast.expr, where: str) -> list[str] | None:
    """The events ``arg`` names: a literal ``"on_…"``, or an f-string over ``FORMATTED``."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("on_"):
        return [arg.value]
    if not (isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant)
            and str(arg.values[0].value).startswith("on_")):
        return None
    names = [""]
    for part in arg.values:
        if isinstance(part, ast.Constant):
            names = [n + str(part.value) for n in names]
        else:
            assert isinstance(part, ast.FormattedValue)
            expr = ast.unparse(part.value)
            assert expr in FORMATTED, f"{where}: an event named by {expr}: add what it can be to FORMATTED"
            names = [n + value for n in names for value in FORMATTED[expr]]
    return names


def _emissions() -> list[tuple[str, str, int]]:
    """(where, event, arguments) of every event the sandbox's code names in a call."""
    root = Path(__file__).parents[2]
    found = []
    for path in sorted((root / "sandbox").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            named = [(i, names) for i, a in enumerate(node.args) if (names := _event_names(a, where))]
            if not named:
                continue
            at, events = named[0]
            # The emitter is the function called, or one handed to a scheduler (call_later(d, endpoint.event, …)).
            callees = [c.attr if isinstance(c, ast.Attribute) else c.id for c in [node.func, *node.args[:at]]
                       if isinstance(c, (ast.Attribute, ast.Name))]
            emitter = next((c for c in callees if c in EMITTERS), None)
            assert emitter is not None, f"{where} names {events} in a call the test does not know"
            after = node.args[at + 1:]
            assert not any(isinstance(a, ast.Starred) for a in after), f"{where}: arguments must be counted"
            count = EMITTERS[emitter]
            found += [(where, event, len(after) if count is None else count) for event in events]
    return found


def test_every_event_the_sandbox_emits_gets_as_many_arguments_as_daily_passes() -> None:
    emissions = _emissions()
    assert {e for _, e, _ in emissions} >= {"on_participant_left", "on_recording_error", "on_dialin_ready",
                                            "on_transcription_stopped", "on_publishing_updated",
                                            "on_dialin_stopped", "on_dialout_stopped"}
    wrong = []
    for where, event, count in emissions:
        handler = getattr(daily.EventHandler, event, None)
        if handler is None:
            wrong.append(f"{where}: daily has no {event}")
            continue
        expected = len(_params(inspect.signature(handler)))
        if count != expected:
            wrong.append(f"{where}: {event} with {count} arguments, daily passes {expected}")
    assert wrong == []
