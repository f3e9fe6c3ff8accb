"""How many sessions each host holds: callfleet and the peer (Pipecat's runner), stepped
through a ladder of N, each step a fresh sandbox (and supervisor) with the bench's own
callers. A host holds N when no frame is lost and echo RTT p99 is at most 50 ms; its
ladder stops at its first failure (the machine is small: nothing past it is run).

    .venv/bin/python scripts/pipecat_capacity.py [--profile pipecat_echo] [--ladder 10,15,20,25,30,40]
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from pathlib import Path
from typing import Any

from bench.main import Profile, load_profile, measure_callfleet
from bench.peer_host import measure_peer
from bench.progress import Progress
from bench.report import CAPACITY_RTT_P99_MS, holds
from bench.stack import REPO, Stack


class Host(enum.Enum):
    CALLFLEET = "callfleet"
    PEER = "peer"


async def step(host: Host, n: int, seconds: float, profile: Profile, repo: Path,
               progress: Progress) -> dict[str, Any]:
    """One host at ``n`` sessions on a fresh stack: its report, or ``{"error"}`` if it failed."""
    stack = Stack(n, repo, profile=profile.name)
    try:
        stack.start(supervisor=host is Host.CALLFLEET)
        if host is Host.CALLFLEET:
            report, _ = await measure_callfleet(stack, n, seconds, progress, profile)
        else:
            assert profile.bot is not None
            report = await measure_peer(stack, n, seconds, progress, profile.bot)
    except (RuntimeError, TimeoutError) as exc:  # a session that never started or echoed: not held
        return {"sessions": n, "error": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        stack.stop()
        progress.done()
    return report


def row(report: dict[str, Any] | None) -> str:
    """One host's cell of the table: held or not, lost frames, RTT p99, CPU per session-minute."""
    if report is None:
        return "-"
    if "error" in report:
        return "FAIL " + report["error"][:40]
    verdict = "ok  " if holds(report) else "FAIL"
    return (f"{verdict} lost {report['frames']['lost']:<5d} p99 {report['echo_rtt_ms']['p99']:6.1f} ms "
            f"cpu {report['cpu_s_per_session_minute']:.2f} s/min")


def largest_held(results: list[dict[str, Any]]) -> int | None:
    """The largest N held before the first failure (None: not even the first step)."""
    best = None
    for report in results:
        if "error" in report or not holds(report):
            break
        best = report["sessions"]
    return best


async def ladder(steps: list[int], seconds: float, profile: Profile, repo: Path) -> dict[str, list[dict[str, Any]]]:
    progress = Progress()
    results: dict[str, list[dict[str, Any]]] = {h.value: [] for h in Host}
    going = {Host.CALLFLEET, Host.PEER}
    print(f"{'N':>4s}  {'callfleet':52s}peer", flush=True)
    for n in steps:
        reports: dict[Host, dict[str, Any] | None] = {}
        for host in Host:  # one host at a time, never both on the machine's two cores
            if host not in going:
                reports[host] = None
                continue
            report = await step(host, n, seconds, profile, repo, progress)
            results[host.value].append(report)
            reports[host] = report
            if "error" in report or not holds(report):
                going.discard(host)
        print(f"{n:4d}  {row(reports[Host.CALLFLEET]):52s}{row(reports[Host.PEER])}", flush=True)
        if not going:
            break
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="pipecat_echo")
    parser.add_argument("--ladder", default="10,15,20,25,30,40", help="the values of N, ascending")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None, help="write every step's report here (JSON)")
    parser.add_argument("--repo", type=Path, default=REPO)
    ns = parser.parse_args(argv)
    try:
        profile = load_profile(ns.repo / "configs" / "profiles.toml", ns.profile)
        steps = sorted(int(v) for v in ns.ladder.split(","))
    except (KeyError, ValueError) as exc:
        print(f"pipecat_capacity: {exc}", file=sys.stderr)
        return 2
    if not profile.hosts_a_pipecat_bot:
        print(f"pipecat_capacity: profile {profile.name!r} is not a pipecat profile", file=sys.stderr)
        return 2
    import uvloop

    results = uvloop.run(ladder(steps, ns.seconds, profile, ns.repo))
    cf, peer = largest_held(results["callfleet"]), largest_held(results["peer"])
    print(f"largest N held (0 lost frames, echo p99 <= {CAPACITY_RTT_P99_MS:g} ms): callfleet {cf}, peer {peer}"
          + (f" ({cf / peer:.2f}x)" if cf and peer else ""))
    if ns.out:
        ns.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0
