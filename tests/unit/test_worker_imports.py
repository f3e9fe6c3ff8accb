"""What a worker imports before it has a session: a worker for a built-in bot (echo,
playback) boots without Pipecat, OpenTelemetry or aiortc; a Pipecat worker's preload imports
Pipecat with its loguru lines (the version banner first) already routed through structlog."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("pipecat", "opentelemetry", "aiortc", "av", "cv2", "loguru")

BOOT_THEN_LIST = f"""
import sys
import worker.main
print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
"""

PRELOAD = """
from worker.pipecat_preload import prepare
prepare("sandbox")
"""

PRELOAD_THEN_LIST = PRELOAD + """
import sys
print(sorted(m for m in ("worker.pipeline_hooks", "worker.turn_metrics", "worker.tracing") if m in sys.modules))
"""


def test_a_built_in_bots_worker_boots_without_pipecat() -> None:
    result = subprocess.run([sys.executable, "-c", BOOT_THEN_LIST], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_pipecat_preload_logs_only_json_lines() -> None:
    result = subprocess.run([sys.executable, "-c", PRELOAD], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "Pipecat's banner is expected on import"
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_the_pipecat_preload_imports_the_turn_figure_hooks() -> None:
    """A session's start imports nothing: its turn figures' hooks are preloaded beside Pipecat
    (worker.tracing, the OTLP exporter's set-up, only by a session with an OTLP endpoint)."""
    result = subprocess.run([sys.executable, "-c", PRELOAD_THEN_LIST], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "['worker.pipeline_hooks', 'worker.turn_metrics']"
