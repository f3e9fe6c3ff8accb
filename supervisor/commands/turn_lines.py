"""``ctl session ID``'s lines for a session's turn figures, usage and worker resources: one
line each, readable in a terminal (the full figures, samples included, are ``--json``)."""

from __future__ import annotations

from typing import Any

SHOWN = frozenset({"turns", "usage", "resources"})  # the detail's keys these lines stand for


def _seconds(spread: dict[str, Any] | None, keys: tuple[str, ...] = ("p50", "p90", "p99")) -> str:
    if not spread:
        return "-"
    return "  ".join(f"{k} {spread[k]:.3f}s" for k in keys if spread.get(k) is not None)


def figure_lines(view: dict[str, Any]) -> list[str]:
    """``turns``, ``ttfb NAME`` (one per service), ``usage`` and ``resources`` lines."""
    lines = []
    turns = view.get("turns") or {}
    if turns.get("count"):
        v2v = _seconds(turns.get("voice_to_voice_s"), ("p50", "p90", "p99", "last"))
        lines.append(f"{'turns':<16}{turns['count']}  voice-to-voice {v2v}")
        lines += [f"{'ttfb':<16}{service}  {_seconds(spread)}" for service, spread in turns.get("ttfb_s", {}).items()]
    usage = {k: v for k, v in (view.get("usage") or {}).items() if v}
    if usage:
        lines.append(f"{'usage':<16}" + "  ".join(f"{k} {v}" for k, v in usage.items()))
    res = view.get("resources") or {}
    if res.get("samples"):
        percent = "-" if res.get("cpu_percent") is None else f"{res['cpu_percent']}%"
        lines.append(f"{'resources':<16}cpu {res['cpu_s']}s ({percent} lately)  pss {res['pss_mb']} MB  "
                     f"{len(res['samples'])} samples")
    return lines
