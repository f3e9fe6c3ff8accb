"""The dashboard (GET /dashboard) end to end: a real supervisor with real workers on a real
sandbox, the page in Debian's headless chromium (tests/browser.py)."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from sandbox.caller import Caller, CallerOptions
from supervisor.http.dashboard import ASSETS
from tests.browser import browser_fixture  # noqa: F401
from tests.conftest import REPO, SandboxProcess
from tests.e2e import test_turn_figures as turn_figures  # its voice pipeline, stand-in services and caller
from tests.rtvi_client import RTVIClient
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

KEY_ENV = "CALLFLEET_TEST_DASHBOARD_KEY"
KEY = "dashboard-test-key-5d1c"
NEEDS_KEY = "This supervisor needs its API key"

ONE_SANDBOX = True  # conftest's sandbox_proc: each test has its own supervisor and looks only at its own sessions


def _supervisor(tmp: Path, sandbox: SandboxProcess, **overrides: Any) -> SupervisorProcess:
    # Sessions with nobody else in the call live long enough for the page to be looked at.
    sup = SupervisorProcess(tmp, sandbox.port, pool={"min_idle": 2, "max_workers": 4},
                            sessions={"idle_timeout_s": 300}, **overrides)
    sup.start()
    return sup


@pytest.fixture(scope="module")
def open_sup(tmp_path_factory: pytest.TempPathFactory, module_sandbox: SandboxProcess) -> Iterator[SupervisorProcess]:
    sup = _supervisor(tmp_path_factory.mktemp("dashboard-open"), module_sandbox)
    try:
        yield sup
    finally:
        sup.stop()


@pytest.fixture(scope="module")
def keyed_sup(tmp_path_factory: pytest.TempPathFactory, module_sandbox: SandboxProcess) -> Iterator[SupervisorProcess]:
    sup = _supervisor(tmp_path_factory.mktemp("dashboard-keyed"), module_sandbox, env={KEY_ENV: KEY},
                      supervisor={"api_key_env": KEY_ENV})
    try:
        yield sup
    finally:
        sup.stop()


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- plain HTTP ----------------------------------------------------------------------------------


async def test_the_page_is_served_without_the_key(keyed_sup: SupervisorProcess) -> None:
    status, body, headers = await keyed_sup.http("GET", "/dashboard")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script src="dashboard/dashboard.js">' in body and 'href="dashboard/dashboard.css"' in body


@pytest.mark.parametrize(("name", "content_type"), [("dashboard.js", "text/javascript"),
                                                    ("dashboard.css", "text/css"),
                                                    ("index.html", "text/html")])
async def test_the_assets_are_served_from_the_package_without_the_key(keyed_sup: SupervisorProcess, name: str,
                                                                      content_type: str) -> None:
    status, body, headers = await keyed_sup.http("GET", f"/dashboard/{name}")
    assert status == 200
    assert headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert body == ASSETS[name][0].decode()


@pytest.mark.parametrize("name", ["nope.js", "..%2Fviews.py", "dashboard.py", "%2E%2E%2Fkeys.py"])
async def test_a_name_the_package_does_not_ship_is_404(keyed_sup: SupervisorProcess, name: str) -> None:
    status, body, _ = await keyed_sup.http("GET", f"/dashboard/{name}")
    assert status == 404
    assert body["error"] == "not-found" and body["info"].endswith("does not exist")


@pytest.mark.parametrize(("method", "path"), [("GET", "/workers"), ("GET", "/sessions"), ("GET", "/sessions/abc"),
                                              ("GET", "/sessions/abc/logs?tail=200"), ("DELETE", "/sessions/abc")])
@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_the_data_the_page_reads_needs_the_key(keyed_sup: SupervisorProcess, method: str, path: str,
                                                     key: str | None) -> None:
    status, body, _ = await keyed_sup.http(method, path, headers={} if key is None else bearer(key))
    assert status == 401
    assert body == {"error": "authentication-error", "info": "missing or invalid bearer key"}


async def test_workers_lists_what_ctl_workers_shows(keyed_sup: SupervisorProcess) -> None:
    listed = await keyed_sup.workers(lambda ws: len(ws) >= 2)
    status, body, _ = await keyed_sup.http("GET", "/workers", headers=bearer())
    assert status == 200
    assert body["node_id"] == socket.gethostname()  # a single node names itself as its sessions do
    assert {w["id"] for w in body["data"]} == {w["id"] for w in listed}
    for worker in body["data"]:
        assert {"id", "pid", "state", "session_id", "pss_mb", "uptime_s", "calls_done"} <= set(worker)


def test_the_page_and_its_assets_ship_in_the_package(tmp_path: Path) -> None:
    """What ``pip install .`` installs: setuptools' build_py output, from which the wheel is made."""
    result = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                             "--build-lib", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shipped = {p.name for p in (tmp_path / "supervisor" / "http" / "dashboard_static").glob("*")}
    assert shipped == set(ASSETS) == {"index.html", "dashboard.js", "dashboard.css"}


# -- in the browser ------------------------------------------------------------------------------


def click(driver: WebDriver, css: str) -> None:
    """Click what ``css`` finds (the page redraws a row in place, but a row that moved may
    still be swapped out between finding and clicking it: then find it again)."""
    for _ in range(5):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being redrawn under the click")


def texts(driver: WebDriver, css: str) -> list[str]:
    return [str(t) for t in driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css)]


def row(session_id: str, table: str) -> str:
    return f'#{table} tr[data-key="{session_id}"]'


async def seen(what: str, probe: Callable[[], Any], timeout: float = 20) -> Any:
    return await wait_until(probe, timeout, what, interval=0.2)


async def test_the_page_shows_a_session_its_logs_and_its_end(open_sup: SupervisorProcess,
                                                             browser: Callable[..., WebDriver]) -> None:
    driver = browser()
    driver.get(open_sup.url + "/dashboard")
    await seen("the workers", lambda: len(texts(driver, "#workers tbody tr")) >= 2)
    assert not driver.find_element(By.ID, "auth").is_displayed()  # no key set, none asked for

    started = await open_sup.start_bot("echo")
    sid = started["session_id"]
    cells = await seen("the session, joined, in the live table",
                       lambda: (c := texts(driver, row(sid, "live") + " td")) and c[2] == "joined" and c)
    assert cells[0] == sid and cells[1] == "echo"
    assert cells[4].startswith("1: ")  # the bot alone in the call
    assert cells[5] == cells[6] == "—"  # no turn yet: no voice-to-voice figure
    assert not driver.find_elements(By.CSS_SELECTOR, row(sid, "live") + " a")  # a room's caller needs no talk link
    await seen("the session's worker busy with it",
               lambda: sid in texts(driver, "#workers tbody td.id"))

    click(driver, row(sid, "live") + ' button[data-action="logs"]')
    await seen("the log panel for the session", lambda: texts(driver, "#logs-session") == [sid])

    click(driver, row(sid, "live") + ' button[data-action="stop"]')
    await seen("the session gone from the live table", lambda: not texts(driver, row(sid, "live")))
    ended = await seen("the session in the ended table", lambda: texts(driver, row(sid, "ended") + " td"))
    assert ended[2] == "ended" and ended[3] == "stopped"
    assert (await open_sup.session(sid))["end_reason"] == "stopped"

    # Nothing the page loaded came from anywhere but the supervisor.
    loaded = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => e.name)")
    assert loaded and all(url.startswith(open_sup.url + "/") for url in loaded), loaded

    # The log tail (GET /sessions/{id}/logs): a 404 there fails the test, it does not skip it.
    lines, _ = await wait_until(lambda: (texts(driver, "#logs-lines .log-line"), texts(driver, "#logs-note")), 20,
                                "a line in the session's log tail (the panel's note says why not)", until=lambda got: got[0])


async def test_with_a_key_the_page_asks_for_it_then_shows_the_data(keyed_sup: SupervisorProcess,
                                                                    browser: Callable[..., WebDriver]) -> None:
    driver = browser()
    driver.get(keyed_sup.url + "/dashboard")
    await seen("the page asking for the key", lambda: driver.find_element(By.ID, "auth").is_displayed())
    assert texts(driver, "#auth-message") == [NEEDS_KEY + "."]
    assert texts(driver, "#workers tbody tr") == []

    driver.find_element(By.ID, "auth-key").send_keys("wrong-key")
    click(driver, "#auth-form button")
    await seen("the page refusing the wrong key", lambda: "refused" in texts(driver, "#auth-message")[0])
    assert driver.find_element(By.ID, "auth").is_displayed()

    driver.find_element(By.ID, "auth-key").send_keys(KEY)
    click(driver, "#auth-form button")
    await seen("the workers, once the key is given", lambda: len(texts(driver, "#workers tbody tr")) >= 2)
    assert not driver.find_element(By.ID, "auth").is_displayed()
    assert driver.execute_script("return sessionStorage.getItem('callfleet.apiKey')") == KEY


@pytest.fixture(scope="module")
def pipecat_sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    tmp = tmp_path_factory.mktemp("dashboard-pipecat")
    (tmp / "profiles.toml").write_text(turn_figures.PROFILES)
    sup = SupervisorProcess(tmp, None, supervisor={"profiles": str(tmp / "profiles.toml")},
                            sessions={"idle_timeout_s": 60, "join_timeout_s": 20})
    sup.start(timeout=60)
    try:
        yield sup
    finally:
        sup.stop()


def milliseconds(seconds: float) -> str:
    """As the page writes a figure (JavaScript's Math.round: halves up)."""
    return f"{math.floor(seconds * 1000 + 0.5)} ms"


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="Silero's VAD needs real speech: apt-get install espeak-ng")
async def test_the_page_shows_a_pipecat_sessions_voice_to_voice_figures(pipecat_sup: SupervisorProcess, tmp_path: Path,
                                                                        browser: Callable[..., WebDriver]) -> None:
    ai = f"http://127.0.0.1:{pipecat_sup.config['sandbox']['port']}/ai"
    driver = browser()  # before the caller joins: its connection lives on this loop
    driver.get(pipecat_sup.url + "/dashboard")
    wav = await turn_figures.speech_wav(tmp_path)
    bot = await pipecat_sup.start_bot("voice_2024_10", **turn_figures.voice_body(ai))
    sid = bot["session_id"]
    client = RTVIClient(CallerOptions(room_url=bot["room_url"], token=bot["token"], tone_hz=None, markers=False))
    await client.join()
    try:
        await turn_figures.talk(client, ai, wav, turns=1)
        detail = await pipecat_sup.wait_session(sid, lambda d: d["turns"]["voice_to_voice_s"] is not None,
                                                what="a turn's voice-to-voice")
        v2v = detail["turns"]["voice_to_voice_s"]
        # The browser is asked from a thread, so that the caller's connection keeps up meanwhile.
        cells = await wait_until(lambda: asyncio.to_thread(texts, driver, row(sid, "live") + " td"), 20,
                                 "the session's voice-to-voice figures on the page", until=lambda c: c and c[5] != "—")
        assert cells[5] == milliseconds(v2v["p50"]) and cells[6] == milliseconds(v2v["p99"]), (cells, v2v)
    finally:
        await client.leave()


async def test_a_browser_session_waiting_for_its_browser_links_to_the_talk_page(pipecat_sup: SupervisorProcess,
                                                                                browser: Callable[..., WebDriver]) -> None:
    ai = f"http://127.0.0.1:{pipecat_sup.config['sandbox']['port']}/ai"
    driver = browser()
    driver.get(pipecat_sup.url + "/dashboard")
    status, reply, _ = await pipecat_sup.http("POST", "/start", json={
        "transport": "webrtc", "profile": "voice_2024_10", "body": turn_figures.voice_body(ai)})
    assert status == 200, reply
    sid = reply["sessionId"]
    detail = await pipecat_sup.wait_session(sid, lambda d: d["state"] in ("assigned", "joining"), what="waiting")
    assert detail["transport"] == "webrtc" and detail["joined_at"] is None
    talk = await seen("the session's talk link",
                      lambda: driver.find_elements(By.CSS_SELECTOR, row(sid, "live") + " a"))
    assert talk[0].get_attribute("href") == f"{pipecat_sup.url}/talk?session={sid}"
    status, _, _ = await pipecat_sup.http("DELETE", f"/sessions/{sid}")
    assert status in (200, 202, 204)
    await seen("the session gone from the live table", lambda: not texts(driver, row(sid, "live")))


async def test_a_callers_chosen_name_is_shown_as_text_never_as_markup(open_sup: SupervisorProcess,
                                                                      browser: Callable[..., WebDriver]) -> None:
    """A caller names itself (so does a browser's request): the page must not run it."""
    hostile = '<img src=x onerror="window.pwned=1">'
    driver = browser()
    driver.get(open_sup.url + "/dashboard")
    started = await open_sup.start_bot("echo")
    sid = started["session_id"]
    caller = Caller(CallerOptions(room_url=started["room_url"], token=started["token"], user_name=hostile,
                                  tone_hz=None))
    await caller.join()
    try:
        cells = await seen("the caller's name in the live table",
                           lambda: (c := texts(driver, row(sid, "live") + " td")) and hostile in c[4] and c)
        assert cells[4] == f"2: bot, {hostile}"
        click(driver, row(sid, "live") + ' button[data-action="logs"]')
        await seen("the log panel for the session", lambda: texts(driver, "#logs-session") == [sid])
        assert not driver.find_elements(By.CSS_SELECTOR, "#live img, #logs-lines img")
        assert driver.execute_script("return window.pwned") is None
    finally:
        await caller.leave()
        await open_sup.http("DELETE", f"/sessions/{sid}")
