"""A real browser for end-to-end tests: Debian's headless chromium driven by Selenium.

Import it into a test module with ``from tests.browser import browser_fixture  # noqa: F401``
(the fixture is named ``browser``; the function's other name keeps ruff's F811 quiet), then
use the ``browser`` factory fixture: ``driver = browser()`` or, for a page that needs a
microphone, ``browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
f"--use-file-for-fake-audio-capture={wav}")``. Every driver it made is quit at teardown.
The test skips (with the reason) only when chromium or its driver is not installed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Headless in the current mode; the tests run as root, where chromium refuses to start
# without --no-sandbox; /dev/shm is small in containers.
BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900")

BrowserFactory = Callable[..., webdriver.Chrome]


def chromium_missing() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not program.exists():
            return f"{program} is not installed (apt-get install chromium chromium-driver)"
    return None


def start_chromium(profile: str, *extra_args: str) -> webdriver.Chrome:
    """Headless chromium with its profile in the folder ``profile`` and ``extra_args`` as flags."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*BASE_ARGS, f"--user-data-dir={profile}", *extra_args):
        options.add_argument(arg)
    # An explicit driver path, so Selenium Manager never looks for (or downloads) one.
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[BrowserFactory]:
    """A factory of headless chromium WebDrivers; extra positional args are chromium flags."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    drivers: list[webdriver.Chrome] = []
    profiles: list[str] = []

    def make(*extra_args: str) -> webdriver.Chrome:
        profile = tempfile.mkdtemp(prefix="callfleet-chromium-")
        profiles.append(profile)
        driver = start_chromium(profile, *extra_args)
        drivers.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in drivers:
            driver.quit()
        for profile in profiles:
            shutil.rmtree(profile, ignore_errors=True)
