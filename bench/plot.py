"""``callfleet bench --plot FILE.png``: the bench's figures as one picture.

Top row, from the raw samples of the run with the most sessions: the start latency and the
echo round trip as ECDFs (the share of sessions or frames at or under each value), callfleet
beside the peer (Pipecat's development runner, for a pipecat profile); the round-trip panel
also draws the direct echo (the same callers, no host) that ``added latency`` is measured
against. With several N (``--sessions 5,10,20``), a second row: the capacity curve, sessions
against echo p99 and against lost frames, for each host.

matplotlib is the optional extra ``plot``: imported only here, only when a picture is asked for.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.report import CAPACITY_RTT_P99_MS

INSTALL_HINT = "pip install 'callfleet[plot]'"
HOSTS = (("callfleet", "tab:blue"), ("peer", "tab:orange"))  # the peer: Pipecat's development runner
DIRECT_COLOUR = "tab:gray"


class PlotUnavailable(Exception):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib() -> ModuleType:
    """matplotlib's ``figure`` module; raises ``PlotUnavailable`` naming the extra when it is
    missing (checked before a bench runs, so that minutes of measuring are not lost)."""
    try:
        return importlib.import_module("matplotlib.figure")
    except ImportError as exc:
        raise PlotUnavailable(f"--plot needs matplotlib, the optional extra 'plot': {INSTALL_HINT} "
                              f"({exc})") from None


def hosts(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, colour, host report) for callfleet and, when the run had one, the peer."""
    found: dict[str, dict[str, Any] | None] = {"callfleet": report, "peer": report.get("peer")}
    return [(name, colour, host) for name, colour in HOSTS if (host := found[name]) is not None]


def draw(reports: list[dict[str, Any]], path: Path) -> Path:
    """Write the picture of ``reports`` (one per N, as ``run_bench`` returns them) to ``path``
    (its format from the suffix, PNG for ``.png``). Raises ``PlotUnavailable`` without
    matplotlib, ``ValueError`` when a report has no raw samples (one from before they were kept)."""
    if not reports:
        raise ValueError("no bench report to draw")
    for report in reports:
        for name, _, host in hosts(report):
            if "samples" not in host:
                raise ValueError(f"the {name} report for {report['sessions']} sessions has no raw samples")
    figure_mod = require_matplotlib()
    ladder = len(reports) > 1
    fig = figure_mod.Figure(figsize=(12, 8.5 if ladder else 4.5), layout="constrained")
    rows = fig.subplots(2 if ladder else 1, 2, squeeze=False)
    biggest = max(reports, key=lambda r: r["sessions"])
    _distributions(rows[0][0], rows[0][1], biggest)
    if ladder:
        _capacity(rows[1][0], rows[1][1], sorted(reports, key=lambda r: r["sessions"]))
    title = f"callfleet bench: {biggest.get('profile', 'echo')}, {biggest['seconds']:g} s of speech per session"
    fig.suptitle(title + ("" if "peer" in biggest else " (no peer: the profile is not a pipecat one)"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _ecdf(axes: Any, values: list[float], **style: Any) -> None:
    ordered = sorted(values)
    if ordered:
        n = len(ordered)
        axes.step(ordered, [(i + 1) / n for i in range(n)], where="post", **style)


def _distributions(starts: Any, rtts: Any, report: dict[str, Any]) -> None:
    n = report["sessions"]
    for name, colour, host in hosts(report):
        samples = host["samples"]
        _ecdf(starts, samples["start_latency_ms"], color=colour, label=f"{name}: {n} at once")
        _ecdf(starts, samples["start_alone_ms"], color=colour, linestyle=":", label=f"{name}: one alone")
        _ecdf(rtts, samples["echo_rtt_ms"], color=colour, label=f"{name}: echo")
    # The direct echo is the callers' own floor: the same for both hosts, drawn once.
    _ecdf(rtts, report["samples"]["direct_rtt_ms"], color=DIRECT_COLOUR, linestyle="--", label="direct (no host)")
    starts.set(title=f"start latency, {n} sessions", xlabel="ms from the request to the bot in the call",
               ylabel="share of starts at or under")
    rtts.set(title=f"round trip, {n} sessions", xlabel="ms from a frame spoken to its echo heard (log scale)",
             ylabel="share of frames at or under", xscale="log")
    ticker = importlib.import_module("matplotlib.ticker")
    # 1, 2, 5, 10, 20 ms... labelled plainly (not 2x10^0), however many decades the samples span.
    rtts.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    rtts.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    rtts.xaxis.set_minor_formatter(ticker.NullFormatter())
    for axes in (starts, rtts):
        axes.set_ylim(0, 1.02)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="lower right")


def _capacity(p99: Any, lost: Any, reports: list[dict[str, Any]]) -> None:
    most_lost = 0
    for name, colour, _ in hosts(reports[-1]):
        ran = [r if name == "callfleet" else r.get("peer") for r in reports]
        points = [(r["sessions"], r) for r in ran if r is not None]
        xs = [n for n, _ in points]
        p99.plot(xs, [r["echo_rtt_ms"]["p99"] for _, r in points], marker="o", color=colour, label=name)
        lost.plot(xs, [r["frames"]["lost"] for _, r in points], marker="o", color=colour, label=name)
        most_lost = max([most_lost, *(r["frames"]["lost"] for _, r in points)])
    p99.axhline(CAPACITY_RTT_P99_MS, color="tab:red", linestyle="--", linewidth=1,
                label=f"holds N: p99 <= {CAPACITY_RTT_P99_MS:g} ms")
    p99.set(title="capacity: echo round trip p99", xlabel="sessions at once", ylabel="ms")
    lost.set(title="capacity: frames lost", xlabel="sessions at once", ylabel="frames never echoed")
    lost.set_ylim(0, max(most_lost, 1) * 1.1)  # none lost is a line on the axis, not a collapsed range
    lost.yaxis.set_major_locator(importlib.import_module("matplotlib.ticker").MaxNLocator(integer=True))
    for axes in (p99, lost):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
