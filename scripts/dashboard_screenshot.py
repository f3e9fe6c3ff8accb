#!/usr/bin/env python3
"""Take the README's dashboard picture: a real supervisor on a real sandbox, two live
sessions (a caller in one), one stopped, one session's log tail open, in headless chromium.

    .venv/bin/python scripts/dashboard_screenshot.py [docs/dashboard.png]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, installed or not

from sandbox.caller import Caller, CallerOptions  # noqa: E402 - after the path is set
from tests.browser import start_chromium  # noqa: E402
from tests.conftest import SandboxProcess  # noqa: E402
from tests.supervisor_harness import SupervisorProcess  # noqa: E402
from tests.waiting import wait_until  # noqa: E402

WIDTH = 1360


def rows(driver: object, css: str) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length", css))  # type: ignore[attr-defined]


async def shoot(out: Path, tmp: Path) -> None:
    sandbox = SandboxProcess("--no-rate-limits")
    sup = SupervisorProcess(tmp, sandbox.port, pool={"min_idle": 3, "max_workers": 4},
                            sessions={"idle_timeout_s": 300})
    caller: Caller | None = None
    driver = None
    try:
        sup.start()
        stopped = await sup.start_bot("echo")
        await sup.wait_session(stopped["session_id"], lambda d: d["state"] == "joined")
        await sup.http("DELETE", f"/sessions/{stopped['session_id']}")
        called = await sup.start_bot("echo")
        alone = await sup.start_bot("recorder")
        for started in (called, alone):
            await sup.wait_session(started["session_id"], lambda d: d["state"] == "joined")
        caller = Caller(CallerOptions(room_url=called["room_url"], token=called["token"], user_name="alice"))
        await caller.join()

        # The browser in a thread: the caller's connection lives on this loop and must keep up.
        driver = await asyncio.to_thread(start_chromium, str(tmp / "chromium"), f"--window-size={WIDTH},900")
        await asyncio.to_thread(driver.get, sup.url + "/dashboard")

        async def count(css: str) -> int:
            return await asyncio.to_thread(rows, driver, css)

        await wait_until(lambda: count("#live tbody tr"), 30, "two live sessions on the page", until=lambda n: n == 2)
        await wait_until(lambda: count("#ended tbody tr"), 30, "the stopped session on the page")
        await wait_until(lambda: count("#workers tbody tr"), 30, "the workers on the page", until=lambda n: n >= 3)
        # The pool samples each worker's PSS every few seconds: the picture waits for the first samples.
        await wait_until(lambda: asyncio.to_thread(driver.execute_script,
                                                   "return [...document.querySelectorAll('#workers tbody tr')]"
                                                   ".filter(r => r.cells[4].textContent !== '—').length"),
                         30, "the workers' PSS on the page", until=lambda n: n >= 3)
        await asyncio.to_thread(driver.execute_script,
                                "document.querySelector(`#live tr[data-key='${arguments[0]}'] button[data-action=logs]`)"
                                ".click()", called["session_id"])
        await wait_until(lambda: count("#logs-lines .log-line"), 30, "log lines on the page", until=lambda n: n >= 3)
        await asyncio.sleep(1.5)  # a few seconds of duration on the clock, the picture's only pause
        # The whole page in one picture: the viewport made as tall as the page.
        height = int(await asyncio.to_thread(driver.execute_script, "return document.documentElement.scrollHeight"))
        await asyncio.to_thread(driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
        await asyncio.to_thread(driver.save_screenshot, str(out))
        print(f"wrote {out}")
    finally:
        if driver is not None:
            driver.quit()
        if caller is not None:
            await caller.leave()
        sup.stop()
        sandbox.stop()


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png").resolve()
    with tempfile.TemporaryDirectory(prefix="callfleet-dashboard-") as tmp:
        asyncio.run(shoot(out, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
