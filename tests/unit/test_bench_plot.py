"""``callfleet bench --plot``: the picture drawn from a report's raw samples (matplotlib's Agg
canvas, no display), its capacity row with several N, and the precise errors: matplotlib
missing (the optional extra ``plot``), a report without samples, a bad ``--sessions``."""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.main import main, session_counts
from bench.plot import INSTALL_HINT, PlotUnavailable, draw, require_matplotlib
from bench.report import host_report
from bench.talk import Talk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
USAGE = {"cpu_s_per_session_minute": 1.5, "pss_mb_per_session": 20.0}


def _host(n: int, echo_ms: float, lost: int, start_ms: float = 40.0) -> dict[str, Any]:
    frames = n * 100
    said = Talk(echo_rtts=[echo_ms + (i % 17) * 0.4 for i in range(frames - lost)],
                direct_rtts=[2.0 + (i % 5) * 0.1 for i in range(frames)], sent=frames, received=frames - lost)
    starts = [start_ms + 3.0 * i for i in range(n)]
    return host_report(n, 2.0, starts, [35.0, 36.5, 38.0], said, USAGE)


def _run(n: int, with_peer: bool = True) -> dict[str, Any]:
    report = {**_host(n, 8.0 + n / 5, 0), "profile": "pipecat_echo"}
    if with_peer:
        report["peer"] = _host(n, 10.0 + n / 2, n // 10, start_ms=400.0)
    return report


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:8]
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_report_keeps_every_sample_its_percentiles_came_from() -> None:
    report = _host(3, 9.0, 2)
    samples = report["samples"]
    assert len(samples["start_latency_ms"]) == 3 and len(samples["start_alone_ms"]) == 3
    assert len(samples["echo_rtt_ms"]) == 298 and len(samples["direct_rtt_ms"]) == 300
    assert max(samples["echo_rtt_ms"]) == pytest.approx(9.0 + 16 * 0.4)


def test_one_n_draws_the_distributions_of_callfleet_beside_the_peer(tmp_path: Path) -> None:
    path = draw([_run(10)], tmp_path / "one.png")
    width, height = _png_size(path)
    assert (width, height) == (1320, 495)  # 12 x 4.5 inches at 110 dpi: one row
    assert path.stat().st_size > 20_000  # lines and text, not a blank canvas


def test_several_n_add_the_capacity_curve_below_the_distributions(tmp_path: Path) -> None:
    path = draw([_run(20), _run(5), _run(10)], tmp_path / "nested" / "ladder.png")
    assert _png_size(path) == (1320, 935)  # two rows
    assert path.stat().st_size > 40_000


def test_a_run_without_a_peer_draws_callfleet_alone(tmp_path: Path) -> None:
    path = draw([_run(5, with_peer=False), _run(10, with_peer=False)], tmp_path / "echo.png")
    assert _png_size(path) == (1320, 935)


def test_a_report_without_raw_samples_is_refused_by_name(tmp_path: Path) -> None:
    old = _run(5)
    del old["peer"]["samples"]
    with pytest.raises(ValueError, match="the peer report for 5 sessions has no raw samples"):
        draw([old], tmp_path / "old.png")
    with pytest.raises(ValueError, match="no bench report"):
        draw([], tmp_path / "none.png")
    assert not list(tmp_path.iterdir())


def test_without_matplotlib_plotting_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    # A None entry makes the import fail as an uninstalled package does.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotUnavailable, match=r"pip install 'callfleet\[plot\]'"):
        require_matplotlib()
    with pytest.raises(PlotUnavailable):
        draw([_run(5)], tmp_path / "x.png")
    # The bench refuses before it measures anything: exit 2, the hint on stderr.
    assert main(["--sessions", "2", "--seconds", "1", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("callfleet bench: --plot needs matplotlib") and INSTALL_HINT in err
    assert not (tmp_path / "x.png").exists()


def test_sessions_takes_one_n_or_several_and_names_a_bad_one() -> None:
    assert session_counts("20") == [20]
    assert session_counts("20,5,10,5") == [5, 10, 20]
    with pytest.raises(argparse.ArgumentTypeError, match="whole numbers"):
        session_counts("5,ten")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
        session_counts("0,5")
