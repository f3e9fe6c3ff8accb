"""What ``callfleet bench`` prints: progress on stderr, the JSON report's percentiles, and
the human summary."""

from __future__ import annotations

import os
import sys
from typing import Any

from sandbox.caller import percentile


class Progress:
    """One status line that rewrites itself on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def pcts(values: list[float]) -> dict[str, float]:
    """``{"p50", "p99"}`` of ``values``, rounded to the microsecond."""
    ordered = sorted(values)
    return {"p50": round(percentile(ordered, 50), 3), "p99": round(percentile(ordered, 99), 3)}


def _ms(value: float | None) -> str:
    return "n/a (the supervisor has no loop probe)" if value is None else f"{value:.1f} ms"


def summary(report: dict[str, Any], diagnostics: dict[str, Any]) -> str:
    r, d = report, diagnostics
    floor = d["floor"]
    return "\n".join([
        f"callfleet bench: {r['sessions']} echo sessions, {r['seconds']:g} s of speech each",
        f"  start latency    p50 {r['start_latency_ms']['p50']:.1f} ms   p99 {r['start_latency_ms']['p99']:.1f} ms",
        f"  echo rtt         p50 {r['echo_rtt_ms']['p50']:.2f} ms   p99 {r['echo_rtt_ms']['p99']:.2f} ms",
        f"  direct rtt       p50 {r['direct_rtt_ms']['p50']:.2f} ms   p99 {r['direct_rtt_ms']['p99']:.2f} ms",
        f"  added latency    p50 {r['added_latency_ms']['p50']:.2f} ms   p99 {r['added_latency_ms']['p99']:.2f} ms",
        f"  frames           sent {r['frames']['sent']}  received {r['frames']['received']}  lost {r['frames']['lost']}",
        f"  supervisor CPU   {r['supervisor_cpu_us_per_frame']} us per routed frame",
        f"  forwarding floor {r['forwarding_floor_us_per_frame']} us per frame, bare ROUTER, {floor.peers} peers "
        f"(Python thread {floor.python_us_per_frame:.1f}, libzmq I/O thread {floor.io_us_per_frame:.1f})",
        f"  loop stall       {_ms(r['loop_stall_ms_max'])} worst supervisor loop lateness while speaking, "
        f"of which its own work at most {_ms(r.get('loop_busy_ms_max'))}",
        f"  worker PSS       idle {r['worker_pss_mb']['idle']} MB   in call {r['worker_pss_mb']['in_call']} MB",
        f"  leaks            processes {r['leaks']['processes']}  rooms {r['leaks']['rooms']}",
        "  supervisor CPU by thread, us per frame: "
        + ", ".join(f"{k} {v}" for k, v in d["supervisor_us_per_frame_by_thread"].items()),
        "  cores in use     " + ", ".join(f"{k} {v:.2f}" for k, v in d["cores"].items()) + f" (of {os.cpu_count()})",
    ])
