"""Reloading profiles that add a Pipecat bot: the forkserver is restarted with it
preloaded, so a worker forked after the reload imports nothing when its session starts;
a bot that does not import makes the reload refused, naming the profile."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, SandboxProcess
from tests.supervisor_harness import SupervisorProcess

ECHO_ONLY = '[profiles.echo]\nkind = "echo"\n'
WITH_PIPECAT = ECHO_ONLY + f'\n[profiles.pipecat_echo]\nkind = "pipecat"\nbot = "{REPO}/examples/pipecat_echo.py:bot"\n'


def _bot_started_lines(sup: SupervisorProcess) -> list[dict[str, object]]:
    lines = []
    for line in sup.log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "bot started":
            lines.append(entry)
    return lines


async def test_a_reload_that_adds_a_pipecat_bot_preloads_it_for_new_workers(tmp_path: Path,
                                                                           sandbox_proc: SandboxProcess) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(ECHO_ONLY)
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, supervisor={"profiles": str(profiles)},
                            pool={"min_idle": 1, "max_workers": 2})
    sup.start()
    try:
        status, body, _ = await sup.http("POST", "/start", json={"profile": "pipecat_echo"})
        assert status == 422  # not a profile yet

        profiles.write_text(WITH_PIPECAT.replace("pipecat_echo.py", "no_such_bot.py"))
        refused = sup.ctl("reload")
        assert refused.returncode == 1
        assert "profiles.pipecat_echo.bot" in refused.stderr and "no_such_bot.py" in refused.stderr

        profiles.write_text(WITH_PIPECAT)
        reloaded = sup.ctl("reload")
        assert reloaded.returncode == 0, reloaded.stderr
        # The idle worker forked before the reload has no Pipecat; let the pool replace it.
        before = {w["pid"] for w in await sup.workers()}
        sup.ctl("scale", "--min-idle", "0", "--max-workers", "2")
        await sup.workers(lambda ws: not ({w["pid"] for w in ws} & before))
        sup.ctl("scale", "--min-idle", "1", "--max-workers", "2")
        await sup.workers(lambda ws: any(w["state"] == "idle" for w in ws))

        status, body, _ = await sup.http("POST", "/start", json={"profile": "pipecat_echo"})
        assert status == 200, body
        detail = await sup.wait_session(body["sessionId"], lambda d: d["state"] == "joined", timeout=30)
        assert detail["profile"] == "pipecat_echo"
        started = _bot_started_lines(sup)
        assert [line["session_id"] for line in started] == [body["sessionId"]]
        assert started[0]["preloaded"] is True  # the worker imported nothing to run it
    finally:
        sup.stop()
