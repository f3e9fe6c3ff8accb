"""The cluster's directory and Redis link in one process against a real redis-server:
what a node re-publishes when Redis comes back empty, what it says about the outage, and
how it treats sessions a previous life of the same node left behind."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from supervisor.cluster import Cluster
from tests.cluster.conftest import RedisServer
from tests.waiting import wait_until


def view(sid: str, state: str = "joined") -> dict[str, Any]:
    return {"session_id": sid, "state": state, "requested_at": time.time(), "end_reason": None}


@pytest.fixture
async def make_cluster(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    made: list[Cluster] = []

    async def make(node_id: str, ledger: list[str] | None = None) -> Cluster:
        names = ledger if ledger is not None else []
        cluster = Cluster(redis_server.url, node_id, f"http://127.0.0.1:1/{node_id}", 2.0, ledger=lambda: list(names))
        await cluster.start()
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            await cluster.stop()


async def stored(redis: Redis, sid: str) -> dict[str, Any] | None:
    raw = await redis.get(f"cf:session:{sid}")
    return None if raw is None else dict(json.loads(raw))


async def test_a_restarted_empty_redis_gets_every_view_lease_and_ledger_back_with_one_line_each_way(
    make_cluster: Callable[..., Any], redis_server: RedisServer
) -> None:
    ledger = ["room-a", "room-b"]
    node = await make_cluster("n1", ledger)
    node.publish_session(view("s-live"))
    node.publish_session(view("s-done", "ended"))
    for name in ledger:
        node.room_remembered(name)
    with capture_logs() as logs:
        redis_server.stop()
        node.publish_session(view("s-new"))  # while Redis is down: must not raise, must not be lost
        node.room_remembered("room-c")
        ledger.append("room-c")
        assert await node.owner_of("s-live") is None
        assert await node.all_sessions() == []
        await wait_until(lambda: not node.available, timeout=5, what="the link noticing")
        redis_server.start()
        await wait_until(lambda: node.available, timeout=10, what="the link reconnecting")
        async with Redis.from_url(redis_server.url) as redis:
            await wait_until(lambda: stored(redis, "s-new"), timeout=5, what="the view noted meanwhile written")
            assert (await stored(redis, "s-live") or {}).get("node_id") == "n1"
            assert (await stored(redis, "s-done") or {}).get("state") == "ended"
            assert {m.decode() for m in await redis.smembers("cf:node:n1:rooms")} == {"room-a", "room-b", "room-c"}
            assert {m.decode() for m in await redis.smembers("cf:node:n1:sessions")} == {"s-live", "s-new"}
            assert await redis.exists("cf:lease:n1")
    events = [e["event"] for e in logs]
    assert sum(1 for e in events if e.startswith("redis unavailable")) == 1, events
    assert events.count("redis back") == 1, events
    owner = await node.owner_of("s-new")
    assert owner is not None and owner.node_id == "n1"


async def test_a_node_restarted_under_its_id_fails_the_sessions_its_previous_life_left(
    make_cluster: Callable[..., Any], redis_server: RedisServer
) -> None:
    first = await make_cluster("n1")
    first.publish_session(view("s-old"))
    async with Redis.from_url(redis_server.url) as redis:
        await wait_until(lambda: stored(redis, "s-old"), timeout=5, what="published")
        await first.lease.stop()  # dies without a word
        await first.directory.stop()
        again = await make_cluster("n1")
        old = await stored(redis, "s-old")
        assert old is not None and old["state"] == "failed" and old["end_reason"] == "node_lost"
        assert not await redis.sismember("cf:node:n1:sessions", "s-old")
        assert await again.owner_of("s-old") is None


async def test_placement_lists_other_live_nodes_with_room_most_free_first(make_cluster: Callable[..., Any]) -> None:
    a, b, c = await make_cluster("a"), await make_cluster("b"), await make_cluster("c")
    a.set_capacity(1)
    b.set_capacity(3)
    c.set_capacity(0)
    await wait_until(c.nodes_with_capacity, 10, "b then a, as c sees them",
                     until=lambda nodes: [n.node_id for n in nodes] == ["b", "a"])
    assert [n.node_id for n in await b.nodes_with_capacity()] == ["a"]
