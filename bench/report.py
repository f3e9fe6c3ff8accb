"""What ``callfleet bench`` reports: the JSON report's percentiles and the human summary."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sandbox.caller import percentile

if TYPE_CHECKING:
    from bench.talk import Talk

CAPACITY_RTT_P99_MS = 50.0  # what "holds N sessions" allows, beside zero lost frames


def pcts(values: list[float]) -> dict[str, float]:
    """``{"p50", "p99"}`` of ``values``, rounded to the microsecond."""
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 50), 3), "p99": round(percentile(ordered, 99), 3)}


def added(echo: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """``added_latency_ms``: the host's echo round trip minus the direct one, percentile by percentile."""
    return {k: round(echo[k] - direct[k], 3) for k in ("p50", "p99")}


def host_report(sessions: int, seconds: float, start_ms: list[float], alone_ms: list[float],
                said: Talk, usage: dict[str, float | None]) -> dict[str, Any]:
    """The keys every host's report has, callfleet's and the peer's alike: starts under the
    burst and alone, echo and direct round trips, added latency, frames, ``usage``
    (``cpu_s_per_session_minute``, ``pss_mb_per_session``), and the raw ``samples``."""
    echo, direct = pcts(said.echo_rtts), pcts(said.direct_rtts)
    return {
        "sessions": sessions,
        "seconds": seconds,
        "start_latency_ms": pcts(start_ms),
        "start_alone_ms": pcts(alone_ms),
        "echo_rtt_ms": echo,
        "direct_rtt_ms": direct,
        "added_latency_ms": added(echo, direct),
        "frames": {"sent": said.sent, "received": said.received, "lost": said.sent - said.received},
        "cpu_s_per_session_minute": usage.get("cpu_s_per_session_minute"),
        "pss_mb_per_session": usage.get("pss_mb_per_session"),
        # Every measurement the percentiles above came from (``callfleet bench --plot`` draws them).
        "samples": {"start_latency_ms": _rounded(start_ms), "start_alone_ms": _rounded(alone_ms),
                    "echo_rtt_ms": _rounded(said.echo_rtts), "direct_rtt_ms": _rounded(said.direct_rtts)},
    }


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def holds(report: dict[str, Any]) -> bool:
    """Whether a host held its sessions: no frame lost and echo p99 within the bound."""
    return bool(report["frames"]["sent"]) and report["frames"]["lost"] == 0 \
        and report["echo_rtt_ms"]["p99"] <= CAPACITY_RTT_P99_MS


def _ms(value: float | None) -> str:
    return "n/a (the supervisor has no loop probe)" if value is None else f"{value:.1f} ms"


def _pair(report: dict[str, Any], key: str, fmt: str = "{:.1f}") -> str:
    value = report.get(key)
    if isinstance(value, dict):
        return " / ".join(fmt.format(value[k]) if value.get(k) is not None else "n/a" for k in ("p50", "p99"))
    return fmt.format(value) if value is not None else "n/a"


def beside_peer(report: dict[str, Any]) -> list[str]:
    """The summary's table of callfleet beside the peer (Pipecat's runner), same N and callers."""
    peer = report["peer"]
    rows = [
        ("start alone p50/p99 ms", _pair(report, "start_alone_ms"), _pair(peer, "start_alone_ms")),
        ("start burst p50/p99 ms", _pair(report, "start_latency_ms"), _pair(peer, "start_latency_ms")),
        ("echo rtt p50/p99 ms", _pair(report, "echo_rtt_ms", "{:.2f}"), _pair(peer, "echo_rtt_ms", "{:.2f}")),
        ("added p50/p99 ms", _pair(report, "added_latency_ms", "{:.2f}"), _pair(peer, "added_latency_ms", "{:.2f}")),
        ("frames lost / sent", f"{report['frames']['lost']} / {report['frames']['sent']}",
         f"{peer['frames']['lost']} / {peer['frames']['sent']}"),
        ("CPU s per session-minute", _pair(report, "cpu_s_per_session_minute", "{:.2f}"),
         _pair(peer, "cpu_s_per_session_minute", "{:.2f}")),
        ("PSS MB per session", _pair(report, "pss_mb_per_session"), _pair(peer, "pss_mb_per_session")),
        ("leaks", ", ".join(f"{k} {v}" for k, v in report["leaks"].items()),
         ", ".join(f"{k} {v}" for k, v in peer["leaks"].items())),
    ]
    width = max(len(r[1]) for r in rows) + 2
    lines = [f"  beside Pipecat's development runner (one process, a task per session), "
             f"{peer['sessions']} sessions, run after callfleet's:",
             f"    {'':26s}{'callfleet':{width}s}peer"]
    lines += [f"    {name:26s}{ours:{width}s}{theirs}" for name, ours, theirs in rows]
    if peer["leaks"].get("rooms"):
        lines.append("    (the runner never deletes the rooms it creates; Daily expires them after 2 h)")
    return lines


def summary(report: dict[str, Any], diagnostics: dict[str, Any]) -> str:
    r, d = report, diagnostics
    floor = d["floor"]
    over = " phone calls over Twilio Media Streams," if r.get("transport") == "twilio" else " sessions,"
    lines = [
        f"callfleet bench: {r['sessions']} {r.get('profile', 'echo')}{over} {r['seconds']:g} s of speech each",
        f"  start latency    p50 {r['start_latency_ms']['p50']:.1f} ms   p99 {r['start_latency_ms']['p99']:.1f} ms"
        f"   (one session alone: p50 {r['start_alone_ms']['p50']:.1f} ms)",
        f"  echo rtt         p50 {r['echo_rtt_ms']['p50']:.2f} ms   p99 {r['echo_rtt_ms']['p99']:.2f} ms",
        f"  direct rtt       p50 {r['direct_rtt_ms']['p50']:.2f} ms   p99 {r['direct_rtt_ms']['p99']:.2f} ms",
        f"  added latency    p50 {r['added_latency_ms']['p50']:.2f} ms   p99 {r['added_latency_ms']['p99']:.2f} ms",
        f"  frames           sent {r['frames']['sent']}  received {r['frames']['received']}  lost {r['frames']['lost']}",
        f"  supervisor CPU   {r['supervisor_cpu_us_per_frame']} us per routed frame" if r["supervisor_cpu_us_per_frame"]
        else "  supervisor CPU   n/a: no frame was routed through it (a hosted bot's audio stays in its worker)",
        *(["  (a phone call's frames are its media messages, relayed by the supervisor both ways; direct rtt is the "
           "same phones on a loopback Media Streams echo, no bot)"] if r.get("transport") == "twilio" else []),
        f"  forwarding floor {r['forwarding_floor_us_per_frame']} us per frame, bare ROUTER, {floor.peers} peers "
        f"(Python thread {floor.python_us_per_frame:.1f}, libzmq I/O thread {floor.io_us_per_frame:.1f})",
        f"  loop stall       {_ms(r['loop_stall_ms_max'])} worst supervisor loop lateness while speaking, "
        f"of which its own work at most {_ms(r.get('loop_busy_ms_max'))}",
        f"  worker PSS       idle {r['worker_pss_mb']['idle']} MB   in call {r['worker_pss_mb']['in_call']} MB",
        "  leaks            " + "  ".join(f"{k} {v}" for k, v in r["leaks"].items()),
        "  supervisor CPU by thread, us per frame: "
        + ", ".join(f"{k} {v}" for k, v in d["supervisor_us_per_frame_by_thread"].items()),
        "  cores in use     " + ", ".join(f"{k} {v:.2f}" for k, v in d["cores"].items()) + f" (of {os.cpu_count()})",
        f"  whole host       {_pair(r, 'cpu_s_per_session_minute', '{:.2f}')} CPU s per session-minute, "
        f"{_pair(r, 'pss_mb_per_session')} MB PSS per session (supervisor and every process under it)",
    ]
    if "peer" in r:
        lines += beside_peer(r)
    return "\n".join(lines)
