"""The dashboard in a cluster: two real supervisors sharing one Redis and one sandbox, the
page of one in headless chromium shows the other node's session and stops it."""

from __future__ import annotations

from collections.abc import Callable

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import browser_fixture  # noqa: F401
from tests.cluster.conftest import NodesFactory
from tests.waiting import wait_until


def texts(driver: WebDriver, css: str) -> list[str]:
    return [str(t) for t in driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css)]


async def test_one_nodes_page_shows_and_stops_a_session_on_another_node(make_nodes: NodesFactory,
                                                                        browser: Callable[..., WebDriver]) -> None:
    n1, n2 = await make_nodes("n1", "n2")
    sid = (await n2.start_bot("echo"))["session_id"]
    await n2.wait_session(sid, lambda d: d["state"] == "joined")
    driver = browser()
    driver.get(n1.url + "/dashboard")

    live = f'#live tr[data-key="{sid}"]'
    cells = await wait_until(lambda: texts(driver, live + " td"), 20, "n2's session on n1's page", interval=0.2)
    assert cells[0] == sid and cells[2] == "joined" and cells[7] == "n2"
    await wait_until(lambda: texts(driver, "#nodes tbody tr"), 20, "both nodes on the page",
                     until=lambda rows: len(rows) == 2, interval=0.2)
    assert texts(driver, '#nodes tr[data-key="n1"] td')[1] == "running"  # the node serving the page, in full
    assert texts(driver, '#nodes tr[data-key="n2"] td')[4] == "live 1"  # another, by its live sessions

    driver.find_element(By.CSS_SELECTOR, live + ' button[data-action="stop"]').click()
    await n2.wait_session(sid, lambda d: d["state"] == "ended", timeout=30, what="the session stopped through n1")
    assert (await n2.session(sid))["end_reason"] == "stopped"
    await wait_until(lambda: texts(driver, f'#ended tr[data-key="{sid}"] td'), 20, "the session ended on n1's page",
                     until=lambda c: c and c[2] == "ended", interval=0.2)
