"""``callfleet bench --profile pipecat_echo`` end to end, small: a real sandbox, supervisor
and workers, then the peer (Pipecat's runner stand-in, ``bench.peer``) on the same
sandbox, with real synthetic callers. It checks what the report says, not how fast."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None,
                                reason="pipecat-ai is not installed (the pipecat extra)")

HOST_KEYS = {"sessions", "seconds", "start_latency_ms", "start_alone_ms", "echo_rtt_ms", "direct_rtt_ms",
             "added_latency_ms", "frames", "cpu_s_per_session_minute", "pss_mb_per_session", "leaks"}


def test_bench_of_a_pipecat_profile_reports_the_peer_beside_callfleet(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "cli", "bench", "--profile", "pipecat_echo",
                             "--sessions", "2", "--seconds", "2", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    peer = report["peer"]
    assert report["profile"] == "pipecat_echo"
    assert HOST_KEYS <= set(report) and HOST_KEYS <= set(peer)
    for host in (report, peer):
        assert host["sessions"] == 2
        # Both hosts' bots echoed the same callers (a loaded machine may drop a few frames).
        assert host["frames"]["sent"] > 0 and host["frames"]["received"] >= 0.9 * host["frames"]["sent"]
        assert host["cpu_s_per_session_minute"] > 0 and host["pss_mb_per_session"] > 0
    assert report["leaks"] == {"processes": 0, "rooms": 0}
    # Every peer bot ended when its caller left; the rooms it made are the runner's to leave.
    assert peer["leaks"]["sessions"] == 0 and peer["leaks"]["processes"] == 0
    assert report["worker_pss_mb"]["idle"] and report["worker_pss_mb"]["in_call"]
    assert "Pipecat's development runner" in result.stdout
