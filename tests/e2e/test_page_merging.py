"""``pool.merge_pages = true``: the forkserver opts itself into kernel same-page merging
before its first fork, so every worker it forks is mergeable from birth; without it none is."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess

PR_GET_MEMORY_MERGE = 68  # linux/prctl.h, Linux 6.4+: -1 (EINVAL) where the kernel has no per-process merging


def kernel_merges() -> bool:
    return Path("/proc/self/ksm_stat").exists() and ctypes.CDLL(None).prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) >= 0


pytestmark = pytest.mark.skipif(not kernel_merges(), reason="this kernel has no per-process page merging (Linux 6.4+ with KSM)")


def merge_any(pid: int) -> bool:
    return "ksm_merge_any: yes" in Path(f"/proc/{pid}/ksm_stat").read_text()


@pytest.mark.parametrize("merge_pages", [True, False])
async def test_workers_are_mergeable_exactly_when_the_pool_says_so(tmp_path: Path, sandbox_proc: SandboxProcess,
                                                                   merge_pages: bool) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, pool={"min_idle": 2, "max_workers": 2,
                                                                "merge_pages": merge_pages})
    sup.start()
    try:
        workers = await sup.workers(lambda ws: len([w for w in ws if w["state"] == "idle"]) == 2)
        assert [merge_any(w["pid"]) for w in workers] == [merge_pages, merge_pages]
        assert merge_any(json.loads(sup.ctl("--json", "status").stdout)["pid"]) is False  # the supervisor is not
    finally:
        sup.stop()
