"""What ``callfleet bench`` reports for each host: the same keys for callfleet and the peer
(Pipecat's runner), per-session CPU and memory, what "holds N sessions" means, and which
profiles it knows. Pure logic only; the end-to-end run is ``test_bench_e2e``."""

from __future__ import annotations

import pytest

from bench.capacity import largest_held
from bench.floor import FloorResult, ForwardMode
from bench.main import load_profile
from bench.report import beside_peer, holds, host_report, summary
from bench.stack import REPO
from bench.talk import ProcessTreeWindow, Talk

USAGE = {"cpu_s_per_session_minute": 1.5, "pss_mb_per_session": 20.0}


def _talk(sent: int = 100, received: int = 100, echo_ms: float = 20.0) -> Talk:
    return Talk(echo_rtts=[echo_ms] * received, direct_rtts=[5.0] * sent, sent=sent, received=received)


def _host(sessions: int = 2, **kwargs: object) -> dict[str, object]:
    return host_report(sessions, 2.0, [30.0, 40.0], [12.0], _talk(**kwargs), USAGE)  # type: ignore[arg-type]


def test_a_host_report_has_the_spec_keys_and_per_session_usage() -> None:
    report = host_report(2, 2.0, [30.0, 40.0], [12.0], _talk(sent=100, received=97, echo_ms=21.0), USAGE)
    assert set(report) == {"sessions", "seconds", "start_latency_ms", "start_alone_ms", "echo_rtt_ms",
                           "direct_rtt_ms", "added_latency_ms", "frames", "cpu_s_per_session_minute",
                           "pss_mb_per_session", "samples"}
    assert report["frames"] == {"sent": 100, "received": 97, "lost": 3}
    assert report["added_latency_ms"] == {"p50": 16.0, "p99": 16.0}
    assert report["start_alone_ms"] == {"p50": 12.0, "p99": 12.0}
    assert report["cpu_s_per_session_minute"] == 1.5 and report["pss_mb_per_session"] == 20.0


def test_a_process_tree_window_divides_its_cpu_and_memory_by_sessions_and_minutes() -> None:
    window = ProcessTreeWindow(root=1)
    window.started, window.ended, window.cpu_s, window.pss_mb = 100.0, 130.0, 6.0, 400.0
    # 6 CPU seconds over half a minute for 4 sessions: 3 s per session-minute.
    assert window.figures(4) == {"cpu_s_per_session_minute": 3.0, "pss_mb_per_session": 100.0}


def test_a_host_holds_n_only_with_no_lost_frame_and_rtt_p99_within_50_ms() -> None:
    assert holds(_host())
    assert not holds(_host(received=99))
    assert not holds(_host(echo_ms=50.5))
    assert not holds(_host(sent=0, received=0))  # nothing measured is nothing held


def test_the_largest_n_held_stops_at_the_first_failure() -> None:
    ladder = [_host(10), _host(15), _host(20, received=99), _host(25)]
    assert largest_held(ladder) == 15
    assert largest_held([{"sessions": 10, "error": "RuntimeError: no echo"}]) is None


def test_the_summary_shows_the_peer_beside_callfleet_only_for_a_pipecat_run() -> None:
    ours = {**_host(), "profile": "pipecat_echo", "supervisor_cpu_us_per_frame": None,
            "forwarding_floor_us_per_frame": 30.0, "loop_stall_ms_max": 1.0, "loop_busy_ms_max": 0.5,
            "worker_pss_mb": {"idle": 15.0, "in_call": 25.0}, "leaks": {"processes": 0, "rooms": 0}}
    diagnostics = {"floor": FloorResult(mode=ForwardMode.READER, peers=2, frames=10, us_per_frame=30.0,
                                        io_us_per_frame=10.0),
                   "cores": {"workers": 0.5}, "supervisor_us_per_frame_by_thread": {}}
    peer = {**_host(echo_ms=30.0), "process_pss_mb": {"idle": 60.0, "in_call": 70.0},
            "leaks": {"processes": 0, "sessions": 0, "rooms": 5}}
    assert "Pipecat's development runner" not in summary(ours, diagnostics)
    text = summary({**ours, "peer": peer}, diagnostics)
    table = beside_peer({**ours, "peer": peer})
    assert all(line in text for line in table)
    assert any("echo rtt" in line and "20.00 / 20.00" in line and "30.00 / 30.00" in line for line in table)
    assert any("never deletes the rooms" in line for line in table)


def test_profiles_are_read_from_the_checkout_and_an_unknown_one_is_named() -> None:
    pipecat = load_profile(REPO / "configs" / "profiles.toml", "pipecat_echo")
    assert pipecat.hosts_a_pipecat_bot and pipecat.bot == "examples/pipecat_echo.py:bot"
    assert not load_profile(REPO / "configs" / "profiles.toml", "echo").hosts_a_pipecat_bot
    with pytest.raises(KeyError, match="no_such_profile"):
        load_profile(REPO / "configs" / "profiles.toml", "no_such_profile")
