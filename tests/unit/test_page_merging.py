"""Page merging (``pool.merge_pages``): what the forkserver is told, the opt-in itself, and
the start-up line when the host would merge nothing."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import pytest
import structlog

from protocol.environment import MERGE_PAGES_ENV
from supervisor.config import parse
from supervisor.pool.forkserver import set_environment
from supervisor.startup import check_page_merging
from worker import page_merging


def test_the_forkserver_is_told_to_merge_pages_only_while_the_pool_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", dict(os.environ))
    set_environment("sandbox", [], None, merge_pages=True)
    assert os.environ[MERGE_PAGES_ENV] == "1"
    set_environment("sandbox", [], None)  # a reload that turned it off
    assert MERGE_PAGES_ENV not in os.environ


def test_opting_in_marks_the_process_mergeable_or_says_why_it_cannot(capsys: pytest.CaptureFixture[str]) -> None:
    merged = page_merging.opt_in()
    try:
        if merged:
            assert "ksm_merge_any: yes" in Path("/proc/self/ksm_stat").read_text()
        else:  # a kernel before 6.4, or one built without KSM
            assert "callfleet forkserver: page merging unavailable: " in capsys.readouterr().err
    finally:
        if merged:  # this test process is no worker
            ctypes.CDLL(None).prctl(page_merging.PR_SET_MEMORY_MERGE, 0, 0, 0, 0)


@pytest.mark.parametrize(("ksm_run", "says"), [
    ("0\n", "the host's KSM thread is stopped"),
    (None, "this kernel has no page merging"),
    ("1\n", None),
])
def test_start_up_says_when_merge_pages_is_on_and_the_host_would_merge_nothing(
        tmp_path: Path, ksm_run: str | None, says: str | None) -> None:
    run = tmp_path / "run"
    if ksm_run is not None:
        run.write_text(ksm_run)
    with structlog.testing.capture_logs() as lines:
        check_page_merging(parse("[pool]\nmerge_pages = true\n"), run)
        check_page_merging(parse(""), run)  # off: nothing to say
    if says is None:
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0]["log_level"] == "warning" and says in lines[0]["event"], lines
