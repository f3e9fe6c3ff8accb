"""The Daily REST client against the sandbox, with faults on: retries succeed, or fail
with DailyAPIError within a bounded time; no room is leaked or created twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from supervisor.daily_rest import (
    DailyAPIError,
    DailyREST,
    DailyRoomParams,
    DailyRoomProperties,
    DailyRoomSipParams,
    get_name_from_url,
)
from tests.conftest import DailyRest
from tests.waiting import wait_until


@pytest.fixture
async def client(sandbox: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield DailyREST("key", session, api_url=sandbox.api_url, requests_per_second=100, timeout_s=1.0,
                        max_retries=4, backoff_base_s=0.05, backoff_max_s=0.5)


async def test_the_helper_surface_round_trips(client: DailyREST, sandbox: Any) -> None:
    room = await client.create_room(DailyRoomParams(name="helper", privacy="private",
                                                    properties=DailyRoomProperties(sip=DailyRoomSipParams())))
    assert room.name == "helper" and room.privacy == "private" and room.api_created
    assert room.config["eject_at_room_exp"] is True and room.config["exp"] > time.time() + 200
    assert room.sip_endpoint and room.config["sip"]["display_name"] == "sw-sip-dialin"
    assert get_name_from_url(room.url) == "helper"
    assert (await client.get_room_from_url(room.url)).id == room.id
    token = await client.get_token(room.url, expiry_time=600, owner=False)
    props = await client.validate_token(token)
    assert props["room_name"] == "helper" and props["is_owner"] is False
    assert (await client.presence("helper"))["total_count"] == 0
    await client.send_app_message("helper", {"x": 1})
    assert await client.eject("helper", ["nobody"]) == []
    assert (await client.list_recordings(room_name="helper"))["total_count"] == 0
    names = [r.name async for r in client.iter_rooms()]
    assert names == ["helper"]
    assert await client.delete_room_by_url(room.url) is True
    assert await client.delete_room_by_name("helper") is True  # already gone is fine
    with pytest.raises(DailyAPIError) as err:
        await client.get_room_by_name("helper")
    assert err.value.status == 404 and err.value.error == "not-found"


async def test_429_bursts_are_retried_honouring_retry_after(client: DailyREST, sandbox: Any) -> None:
    sandbox.faults.rate_limit_burst, sandbox.faults.retry_after_s = 3, 1
    started = time.monotonic()
    room = await client.create_room(DailyRoomParams(name="after-429"))
    assert room.name == "after-429"
    assert time.monotonic() - started >= 3 * 1.0  # Retry-After honoured each time
    assert client.retries == 3


async def test_5xx_on_a_named_create_is_retried_and_never_duplicates(client: DailyREST, sandbox: Any, rest: DailyRest) -> None:
    sandbox.faults.error_rate, sandbox.faults.seed = 0.5, 7
    sandbox.faults.__post_init__()
    made = []
    for i in range(10):
        try:
            made.append((await client.create_room(DailyRoomParams(name=f"r{i}"))).name)
        except DailyAPIError as exc:
            assert exc.status == 500
    sandbox.faults.error_rate = 0
    listed = [r["name"] for r in (await rest.ok("GET", "/rooms"))["data"]]
    assert sorted(listed) == sorted(set(listed))  # no duplicates
    assert set(made) <= set(listed)
    assert client.retries > 0


async def test_a_nameless_create_is_never_retried(client: DailyREST, sandbox: Any, rest: DailyRest) -> None:
    sandbox.faults.error_rate = 1.0
    with pytest.raises(DailyAPIError) as err:
        await client.create_room(DailyRoomParams())
    assert err.value.status == 500 and client.retries == 0
    sandbox.faults.error_rate = 0
    assert (await rest.ok("GET", "/rooms"))["total_count"] == 0


async def test_stalls_time_out_and_fail_within_a_bounded_time(client: DailyREST, sandbox: Any) -> None:
    sandbox.faults.stall_rate, sandbox.faults.stall_s = 1.0, 3.0
    started = time.monotonic()
    with pytest.raises(DailyAPIError) as err:
        await client.get_room_by_name("whatever")
    elapsed = time.monotonic() - started
    assert err.value.status == 0 and err.value.error == "timeout"
    assert client.retries == 4
    assert elapsed < 5 * 1.0 + 4 * 0.5 + 1  # attempts x timeout + backoff, bounded
    sandbox.faults.stall_rate = 0


async def test_a_stalled_named_create_that_succeeded_is_found_not_duplicated(client: DailyREST, sandbox: Any, rest: DailyRest) -> None:
    sandbox.faults.latency_ms = 1500  # longer than the client's 1 s timeout: its create's reply is lost
    task = asyncio.ensure_future(client.create_room(DailyRoomParams(name="slow-one")))
    await wait_until(lambda: client.retries >= 1, timeout=10, what="the client to give up on its first create")
    # The sandbox reads a body only after the injected latency, so a create whose client has
    # gone never lands there: the room is made here, as the lost create would have made it.
    landed = sandbox.store.add_room("slow-one", "public", {})
    sandbox.faults.latency_ms = 0
    room = await task
    assert (room.name, room.id) == ("slow-one", landed.id)  # found, not made again
    assert [r["name"] for r in (await rest.ok("GET", "/rooms"))["data"]] == ["slow-one"]


async def test_client_errors_are_not_retried(client: DailyREST) -> None:
    with pytest.raises(DailyAPIError) as err:
        await client.create_room(DailyRoomParams(name="bad name!"))
    assert err.value.status == 400 and err.value.error == "invalid-request-error"
    assert client.retries == 0
