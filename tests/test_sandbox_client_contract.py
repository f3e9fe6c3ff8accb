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


@pytest.mark.parametrize("name", ["CallClient", "EventHandler", "CustomAudioSource", "CustomAudioTrack", "AudioData"])
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
