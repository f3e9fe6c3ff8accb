"""Reloading profiles that add a Pipecat bot: the Pipecat lane's forkserver is started (or
restarted) with it preloaded, so a worker forked after the reload imports nothing when its
session starts;
a bot that does not import makes the reload refused, naming the profile -- callfleet's
built-in Daily Bots pipelines too, located without importing their providers. A bot that
cannot be imported when its session starts ends that session as ``bot_error``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
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
        # The profiles now need a Pipecat lane: it gets a forkserver with the bot preloaded and
        # its own warm worker; the built-in lane's idle worker, forked before, stays as it is.
        before = [w for w in await sup.workers() if w["state"] == "idle"]
        assert [w["lane"] for w in before] == ["builtin"]
        ws = await sup.workers(lambda ws: sorted(w["lane"] for w in ws if w["state"] == "idle") == ["builtin", "pipecat"],
                               timeout=30)
        assert before[0]["pid"] in {w["pid"] for w in ws}

        status, body, _ = await sup.http("POST", "/start", json={"profile": "pipecat_echo"})
        assert status == 200, body
        detail = await sup.wait_session(body["sessionId"], lambda d: d["state"] == "joined", timeout=30)
        assert detail["profile"] == "pipecat_echo"
        started = _bot_started_lines(sup)
        assert [line["session_id"] for line in started] == [body["sessionId"]]
        assert started[0]["preloaded"] is True  # the worker imported nothing to run it
    finally:
        sup.stop()


# -- callfleet's built-in pipelines are checked like any other bot (issue 19) -------------------------


def test_built_in_bots_are_located_without_importing_their_providers() -> None:
    """A typo in a built-in pipeline's module or function is found, and a good path passes,
    without importing the pipelines (each imports every installed provider's SDK)."""
    script = (
        "import json, sys\n"
        "from worker.bot_check import locate\n"
        "specs = ['worker.daily_bots.voice:bot', 'worker.daily_bots.voce:bot', 'worker.daily_bots.vision:bott',\n"
        "         'worker.daily_bots.pipeline:tts_rate']\n"
        "results = [locate(spec) for spec in specs]\n"
        "imported = sorted(m for m in sys.modules if m.startswith(('worker.daily_bots.', 'pipecat.services.')))\n"
        "print(json.dumps({'results': results, 'imported': imported}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    voice, typo, no_function, not_async = report["results"]
    assert voice == {"spec": "worker.daily_bots.voice:bot", "ok": True, "error": None}
    assert not typo["ok"] and "no module named 'worker.daily_bots.voce'" in typo["error"]
    assert not no_function["ok"] and "has no function 'bott'" in no_function["error"]
    assert not not_async["ok"] and "must be an async function" in not_async["error"]
    assert report["imported"] == []  # nothing of the pipelines or the providers' services was imported


async def test_a_reload_with_a_typo_in_a_built_in_bots_path_is_refused_naming_the_profile(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(ECHO_ONLY)
    sup = SupervisorProcess(tmp_path, sandbox_proc.port, supervisor={"profiles": str(profiles)},
                            pool={"min_idle": 1, "max_workers": 2})
    sup.start()
    try:
        profiles.write_text(ECHO_ONLY + '\n[profiles.my_voice]\nkind = "pipecat"\nbot = "worker.daily_bots.voce:bot"\n')
        refused = sup.ctl("reload")
        assert refused.returncode == 1, refused.stdout
        assert "profiles.my_voice.bot" in refused.stderr and "worker.daily_bots.voce" in refused.stderr, refused.stderr
        status, body, _ = await sup.http("POST", "/bots/start", json={"bot_profile": "my_voice"})
        assert status == 422, body  # the running profiles are untouched

        profiles.write_text(ECHO_ONLY + '\n[profiles.my_voice]\nkind = "pipecat"\nbot = "worker.daily_bots.voice:bot"\n')
        reloaded = sup.ctl("reload")
        assert reloaded.returncode == 0, reloaded.stderr
    finally:
        sup.stop()


# Imports once (for the supervisor's check), then fails every time after: a bot that passed
# the check and broke before its session, as a file edited or a dependency removed since would.
ONCE = '''
from pathlib import Path

COUNT = Path(__file__).with_suffix(".count")
imported = int(COUNT.read_text() or "0")
COUNT.write_text(str(imported + 1))
if imported:
    raise ImportError("this bot imports only once")


async def bot(runner_args):
    """Never reached in a worker."""
'''


async def test_a_bot_that_cannot_be_imported_when_its_session_starts_ends_it_as_bot_error(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    shared = Path(tempfile.mkdtemp(prefix="callfleet-once-"))  # under /tmp: the workers' user reaches it
    try:
        os.chmod(shared, 0o755)
        bot = shared / "once.py"
        bot.write_text(ONCE)
        bot.chmod(0o644)
        count = shared / "once.count"
        count.write_text("0")
        count.chmod(0o666)  # the check and the workers may run as another user
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(ECHO_ONLY + f'\n[profiles.once]\nkind = "pipecat"\nbot = "{bot}:bot"\n')
        sup = SupervisorProcess(tmp_path, sandbox_proc.port, supervisor={"profiles": str(profiles)},
                                pool={"min_idle": 1, "max_workers": 2})
        sup.start(timeout=60)  # the check imported it: start-up goes on
        try:
            status, body, _ = await sup.http("POST", "/start", json={"profile": "once"})
            assert status == 200, body
            ended = await sup.wait_session(body["sessionId"], lambda d: d["state"] in ("ended", "failed"), timeout=30)
            assert ended["end_reason"] == "bot_error", ended
            assert "could not be loaded" in ended["error"] and "imports only once" in ended["error"], ended
        finally:
            sup.stop()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
