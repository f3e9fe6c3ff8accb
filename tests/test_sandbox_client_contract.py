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
import importlib.util
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import daily
import pytest

import sandbox.client as sandbox_client

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
