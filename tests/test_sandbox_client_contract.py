"""sandbox.client has daily-python's names and signatures (fails when daily grows one)."""

from __future__ import annotations

import inspect

import daily
import pytest

import sandbox.client as sandbox_client


def _public(cls: type) -> dict[str, inspect.Signature | None]:
    out: dict[str, inspect.Signature | None] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = getattr(cls, name)
        try:
            out[name] = inspect.signature(attr) if callable(attr) else None
        except (TypeError, ValueError):
            out[name] = None
    return out


def _shape(sig: inspect.Signature | None) -> list[tuple[str, object]] | None:
    if sig is None:
        return None
    return [(p.name, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", ["CallClient", "EventHandler", "CustomAudioSource", "CustomAudioTrack", "AudioData",
                                  "NativeVad"])
def test_class_has_every_public_member_with_the_same_signature(name: str) -> None:
    real, ours = _public(getattr(daily, name)), _public(getattr(sandbox_client, name))
    missing = sorted(set(real) - set(ours))
    assert not missing, f"sandbox.client.{name} lacks {missing}"
    for member, sig in real.items():
        assert _shape(ours[member]) == _shape(sig), f"{name}.{member}: {ours[member]} != {sig}"


def test_daily_static_class_has_the_methods_a_worker_uses() -> None:
    for method in ("init", "deinit", "set_log_level", "create_native_vad"):
        assert callable(getattr(sandbox_client.Daily, method))
    assert _shape(inspect.signature(sandbox_client.Daily.init)) == _shape(inspect.signature(daily.Daily.init))


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
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", REAL_VAD], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rate"] == 16000
    assert max(out["silence"]) == 0.0
    assert max(out["speech"]) > 0.5
