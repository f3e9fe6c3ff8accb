"""A worker imports aiortc and Pipecat's SmallWebRTC on its first WebRTC session only: the
forkserver's preload (Pipecat's Daily transport, the worker's own modules) stays as it was
for every session that does not use WebRTC."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pipecat") is None, reason="pipecat-ai is not installed")

PRELOAD_THEN_LIST = """
import sys
import worker.main, worker.bot_runner, worker.webrtc_call
from worker.pipecat_preload import prepare
prepare("sandbox")
print(sorted(m for m in sys.modules if m == "aiortc" or m.startswith(("aiortc.", "pipecat.transports.smallwebrtc"))))
"""


def test_the_workers_preload_imports_no_webrtc() -> None:
    result = subprocess.run([sys.executable, "-c", PRELOAD_THEN_LIST], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
