"""Fencing and an unreadable directory (issue 16 item 7): real redis-server,
one shared sandbox, real supervisors. A node that finds it has lost its lease -- paused
past it, or cut off from Redis longer than it -- ends its sessions itself (their bots
leave the call) before it takes work again, and never brings a session the cluster
declared ``node_lost`` back to life; while Redis is down, a session on another node is a
503, never a 404."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from sandbox.caller import Caller, CallerOptions
from supervisor.cluster import Cluster, LeaseState
from supervisor.cluster.directory import fail_node_lost
from tests.cluster.conftest import LEASE_S, Node, NodeFactory, NodesFactory, RedisServer, RestWitness
from tests.conftest import DailyRest
from tests.waiting import wait_until

# The paused node's workers must not end the call on their own when the supervisor falls
# silent (they would, after ping_timeout_s): a Redis-only partition or a pause shorter than
# that leaves them in the call, and fencing is what must get them out.
PATIENT_WORKERS = {"ping_interval_s": 0.5, "ping_timeout_s": 120}
# Longer than the Redis outages below: those must not fence anyone.
LONG_LEASE_S = 10.0


async def directory_view(redis: Redis, sid: str) -> dict[str, Any] | None:
    raw = await redis.get(f"cf:session:{sid}")
    return None if raw is None else dict(json.loads(raw))


async def bots_in(rest: DailyRest, room: str, people: set[str | None] | None = None) -> set[str]:
    """The participant ids Daily (the sandbox) has in the room, but for ``people``."""
    presence = await rest.ok("GET", f"/rooms/{room}/presence")
    return {p["id"] for p in presence["data"]} - (people or set())


def bot_id(view: dict[str, Any]) -> str:
    return next(p["id"] for p in view["participants"] if p.get("is_bot"))


async def joined(node: Node, sid: str) -> dict[str, Any]:
    return await node.wait_session(sid, lambda d: d["state"] == "joined" and any(
        p.get("is_bot") for p in d["participants"]), timeout=60, what="the bot joined")


async def ready(node: Node) -> bool:
    status, _, _ = await node.http("GET", "/readyz")
    return status == 200


def logged(node: Node, event: str) -> list[int]:
    """Where ``event`` is in the node's log (line numbers)."""
    return [i for i, e in enumerate(node.log_events()) if e.get("event") == event]


async def test_a_node_paused_past_its_lease_ends_its_sessions_and_takes_work_only_after_it_joins_again(
    make_nodes: NodesFactory, redis_client: Redis, sandbox_rest: DailyRest, witness: RestWitness
) -> None:
    paused, survivor = await make_nodes("n1", "n2", n1={"pool": PATIENT_WORKERS, "daily": {"room_pool": 1}})
    room = await sandbox_rest.ok("POST", "/rooms", json={"name": "fenced-call"})
    first = await paused.start_bot("echo", room_url=room["url"], max_duration=300)
    old_bot = bot_id(await joined(paused, first["session_id"]))
    # The person in the call: the bots answer to them, and they stay throughout.
    caller = Caller(CallerOptions(room_url=room["url"], token=first["token"], seconds=0.4))
    await caller.join()
    others = {caller.participant_id}
    assert await bots_in(sandbox_rest, "fenced-call", others) == {old_bot}
    pooled = {m.decode() for m in await redis_client.smembers("cf:node:n1:rooms")}
    assert pooled, "n1's pooled room is in its ledger"

    paused.signal(signal.SIGSTOP)
    try:
        lost = await wait_until(lambda: _marked_lost(redis_client, first["session_id"]), timeout=LEASE_S + 15,
                                what="the survivor marked the paused node's session node_lost")
        assert lost["node_id"] == "n1"
        await wait_until(lambda: all(witness.deletes_of(r) for r in pooled), timeout=15,
                         what="the survivor deleted the paused node's pooled room")
        # The client sees node_lost and starts the session again, in the same room.
        again = await survivor.start_bot("echo", room_url=room["url"], max_duration=300)
        new_bot = bot_id(await joined(survivor, again["session_id"]))
        # The danger is real: the paused node's worker is still in the call.
        assert await bots_in(sandbox_rest, "fenced-call", others) == {old_bot, new_bot}
    finally:
        paused.signal(signal.SIGCONT)

    await wait_until(lambda: _only(sandbox_rest, "fenced-call", new_bot, others), timeout=30,
                     what="the paused node's bot left the room")
    await wait_until(lambda: ready(paused), timeout=30, what="the paused node ready again")
    # Its own record ends node_lost, and the directory never stopped saying so.
    mine = await paused.session(first["session_id"])
    assert mine["state"] == "failed" and mine["end_reason"] == "node_lost", mine
    seen = await directory_view(redis_client, first["session_id"])
    assert seen is not None and seen["state"] == "failed" and seen["end_reason"] == "node_lost", seen
    assert await bots_in(sandbox_rest, "fenced-call", others) == {new_bot}
    assert (await survivor.session(again["session_id"]))["state"] == "joined"
    # It joined again only once its session had ended: no work meanwhile.
    ended = [i for i, e in enumerate(paused.log_events()) if e.get("event") == "session state"
             and e.get("session_id") == first["session_id"] and e.get("state") == "failed"]
    fenced, joins = logged(paused, "node fenced: ending its sessions node_lost; no new work until it joins again"), \
        logged(paused, "node joined the cluster")
    assert fenced and ended and len(joins) == 2, (fenced, ended, joins)
    assert fenced[0] < ended[0] < joins[1]
    # The rooms the survivor deleted are not deleted a second time.
    assert {r: witness.deletes_of(r) for r in pooled} == {r: 1 for r in pooled}
    # And it takes work again.
    later = await paused.start_bot("echo", max_duration=60)
    assert (await joined(paused, later["session_id"]))["node_id"] == "n1"
    await caller.conn.leave()


async def _marked_lost(redis: Redis, sid: str) -> dict[str, Any] | None:
    view = await directory_view(redis, sid)
    return view if view is not None and view.get("end_reason") == "node_lost" else None


async def _only(rest: DailyRest, room: str, bot: str, people: set[str | None]) -> bool:
    return await bots_in(rest, room, people) == {bot}


async def test_a_session_on_another_node_is_a_503_while_redis_is_down_and_stops_once_it_is_back(
    make_nodes: NodesFactory, redis_server: RedisServer
) -> None:
    here, owner = await make_nodes("n1", "n2", n1={"cluster": {"lease_s": LONG_LEASE_S}},
                                   n2={"cluster": {"lease_s": LONG_LEASE_S}})
    bot = await owner.start_bot("echo", max_duration=300)
    sid = bot["session_id"]
    await joined(owner, sid)
    await wait_until(lambda: _seen_from(here, sid), what="the session visible through n1")

    redis_server.stop()
    try:
        for method, path, body in (("DELETE", f"/sessions/{sid}", None), ("GET", f"/sessions/{sid}", None),
                                   ("POST", f"/sessions/{sid}/app-message", {"message": {"hi": 1}})):
            status, reply, headers = await here.http(method, path, json=body)
            assert status == 503, (method, path, status, reply)
            assert reply["error"] == "server-error" and "directory is unreachable" in reply["info"], reply
            assert int(headers["Retry-After"]) >= 1
        status, listing, _ = await here.http("GET", "/sessions")
        assert status == 200 and listing["partial"] is True and "only node n1" in listing["info"], listing
        assert (await owner.session(sid))["state"] == "joined"  # the call goes on meanwhile
    finally:
        redis_server.start()

    stopped = await wait_until(lambda: _deleted_through(here, sid), timeout=20, what="the DELETE through n1")
    assert stopped == {"session_id": sid, "stopping": True}
    ended = await owner.wait_session(sid, lambda d: d["state"] == "ended", what="the session stopped")
    assert ended["end_reason"] == "stopped"


async def _seen_from(node: Node, sid: str) -> bool:
    status, view, _ = await node.http("GET", f"/sessions/{sid}")
    return status == 200 and view["state"] == "joined"


async def _deleted_through(node: Node, sid: str) -> dict[str, Any] | None:
    status, reply, _ = await node.http("DELETE", f"/sessions/{sid}")
    if status == 503:
        return None  # the directory is not back yet: as the client is told, try again
    assert status == 200, (status, reply)
    return dict(reply)


async def test_a_node_cut_off_from_redis_past_its_lease_ends_its_sessions_and_joins_again_when_redis_returns(
    make_node: NodeFactory, redis_server: RedisServer, redis_client: Redis, sandbox_rest: DailyRest
) -> None:
    node = make_node("n1", pool=PATIENT_WORKERS)
    room = await sandbox_rest.ok("POST", "/rooms", json={"name": "cut-off"})
    bot = await node.start_bot("echo", room_url=room["url"], max_duration=300)
    sid = bot["session_id"]
    first_bot = bot_id(await joined(node, sid))
    assert await bots_in(sandbox_rest, "cut-off") == {first_bot}

    redis_server.stop()
    try:
        # Past its lease a survivor may have declared it lost: it cannot tell, so it fences.
        ended = await node.wait_session(sid, lambda d: d["state"] == "failed", timeout=LEASE_S + 15,
                                        what="the session ended by fencing")
        assert ended["end_reason"] == "node_lost", ended
        await wait_until(lambda: _empty(sandbox_rest, "cut-off"), timeout=15, what="the bot left the room")
        status, body, _ = await node.http("GET", "/readyz")
        assert status == 503 and body["state"] == "fenced", body
        status, body, _ = await node.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 503, body
    finally:
        redis_server.start()

    await wait_until(lambda: ready(node), timeout=20, what="the node joined again")
    await redis_client.connection_pool.disconnect()
    seen = await wait_until(lambda: directory_view(redis_client, sid), timeout=10, what="the session republished")
    assert seen["state"] == "failed" and seen["end_reason"] == "node_lost", seen
    later = await node.start_bot("echo", max_duration=60)
    await joined(node, later["session_id"])


async def _empty(rest: DailyRest, room: str) -> bool:
    return not await bots_in(rest, room)


# -- one node in this process, against the real redis-server --------------------------------------


@pytest.fixture
async def make_cluster(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    made: list[Cluster] = []

    async def make(node_id: str) -> Cluster:
        cluster = Cluster(redis_server.url, node_id, f"http://127.0.0.1:1/{node_id}", LEASE_S)
        await cluster.start()
        await wait_until(lambda: cluster.lease_state() is LeaseState.HELD, timeout=5, what="joined")
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            await cluster.stop()


def live_view(sid: str, state: str = "joined") -> dict[str, Any]:
    return {"session_id": sid, "state": state, "requested_at": time.time(), "end_reason": None}


async def test_a_session_marked_node_lost_is_never_brought_back_and_its_node_fences_itself(
    make_cluster: Callable[..., Any], redis_client: Redis
) -> None:
    node = await make_cluster("a")
    node.publish_session(live_view("s1"))
    published = await wait_until(lambda: directory_view(redis_client, "s1"), timeout=5, what="published")
    # A survivor declared the node lost (its lease lapsed unseen by the node itself).
    await redis_client.set("cf:session:s1", json.dumps(fail_node_lost(published, "a")))

    lease = await redis_client.get("cf:lease:a")

    with capture_logs() as logs:
        node.publish_session(live_view("s1", "leaving"))  # the node, not knowing yet
        # Fenced by that write, which did not land; it joins again, with a fresh lease token,
        # once its session is gone.
        await wait_until(lambda: _joined_anew(node, redis_client, lease), timeout=10, what="fenced, joined again")
    assert "node fenced: ending its sessions node_lost; no new work until it joins again" in [e["event"] for e in logs]
    seen = await directory_view(redis_client, "s1")
    assert seen is not None and seen["state"] == "failed" and seen["end_reason"] == "node_lost", seen
    assert not await redis_client.sismember("cf:node:a:sessions", "s1")


async def _joined_anew(node: Cluster, redis: Redis, old_lease: bytes | None) -> bool:
    return node.lease_state() is LeaseState.HELD and await redis.get("cf:lease:a") not in (None, old_lease)


async def test_a_node_that_finds_itself_declared_lost_fences_and_joins_again_only_after_the_survivors_cleanup(
    make_cluster: Callable[..., Any], redis_client: Redis
) -> None:
    node = await make_cluster("a")
    # What a survivor's take leaves: the lease gone, the node marked lost, its clean-up locked.
    async with redis_client.pipeline(transaction=True) as p:
        p.delete("cf:lease:a")
        p.set("cf:lost:a", "b")
        p.set("cf:cleanup:a", "b", px=60_000)
        await p.execute()
    await wait_until(lambda: node.lease.state is LeaseState.FENCED, timeout=10, what="the node fenced")
    # Not while the survivor still holds the clean-up; then with a fresh lease token.
    assert await redis_client.get("cf:lease:a") is None
    assert node.lease_state() is LeaseState.FENCED
    await redis_client.delete("cf:cleanup:a")
    await wait_until(lambda: node.lease_state() is LeaseState.HELD, timeout=10, what="joined again")
    assert await redis_client.get("cf:lease:a") not in (None, b"")
    assert not await redis_client.exists("cf:lost:a")
