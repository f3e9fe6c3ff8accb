"""HTTP behaviour that needs no processes: the app over a small stand-in daemon."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from supervisor.config import parse
from supervisor.daemon_state import DaemonState
from supervisor.http.app import make_app
from supervisor.profiles import parse as parse_profiles
from tests.doubles.http_daemon import BareDaemon


class _Pool:
    def boot_failing(self) -> bool:
        return False

    def capacity(self) -> int:
        return 0

    def warming(self) -> list[str]:
        return []


class DrainingDaemon(BareDaemon):
    """Just enough daemon for the views to answer while it drains."""

    state = DaemonState.DRAINING
    config = parse("")
    profiles = parse_profiles('[profiles.echo]\nkind = "echo"\n')
    pool = _Pool()

    def status(self) -> dict[str, Any]:
        return {"workers": {}, "sessions": {}, "pool": {"capacity": 0}, "sandbox": None}


async def test_a_draining_supervisor_answers_503_and_takes_no_session() -> None:
    async with TestClient(TestServer(make_app(DrainingDaemon()))) as client:
        resp = await client.post("/bots/start", json={"bot_profile": "echo"})
        assert resp.status == 503
        assert (await resp.json())["error"] == "service-unavailable"
        health = await client.get("/healthz")
        assert health.status == 503 and (await health.json())["state"] == "draining"


async def test_a_body_with_bad_utf8_inside_a_string_is_a_400_naming_the_json() -> None:
    async with TestClient(TestServer(make_app(DrainingDaemon()))) as client:
        for path in ("/bots/start", "/dialin"):
            resp = await client.post(path, data=b'{"bot_profile": "\xff", "From": "\xfe"}',
                                     headers={"Content-Type": "application/json"})
            assert resp.status == 400, path
            body = await resp.json()
            assert body["error"] == "invalid-request-error" and "not valid JSON" in body["info"]
