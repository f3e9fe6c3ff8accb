"""Cluster state end to end: real redis-server, one shared sandbox, three real
supervisors. The directory holds every node's sessions, a node that dies is cleaned up
exactly once, Daily's rate limit is the account's, and a Redis outage costs nothing but
the directory for its duration."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from redis.asyncio import Redis

from sandbox.caller import Caller, CallerOptions
from tests.cluster.conftest import LEASE_S, Node, NodesFactory, RedisServer, RestWitness
from tests.conftest import REPO, DailyRest
from tests.supervisor_harness import alive
from tests.waiting import wait_until

FINISHED = ("ended", "failed")


async def view(redis: Redis, sid: str) -> dict[str, Any] | None:
    raw = await redis.get(f"cf:session:{sid}")
    return None if raw is None else dict(json.loads(raw))


async def directory(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every session the shared directory lists, by id."""
    ids = [i.decode() for i in await redis.zrevrange("cf:sessions", 0, -1)]
    raws = await redis.mget([f"cf:session:{i}" for i in ids]) if ids else []
    return {i: json.loads(r) for i, r in zip(ids, raws, strict=True) if r is not None}


async def members(redis: Redis, key: str) -> set[str]:
    return {m.decode() for m in await redis.smembers(key)}


async def joined(node: Node, sid: str) -> dict[str, Any]:
    return await node.wait_session(sid, lambda d: d["state"] == "joined", timeout=60, what="the bot joined")


async def caller_in(bot: dict[str, Any]) -> Caller:
    caller = Caller(CallerOptions(room_url=bot["room_url"], token=bot["token"], seconds=0.4, await_echo=True))
    await caller.join()
    return caller


async def echoed(caller: Caller, what: str) -> None:
    """The caller speaks and hears every frame back."""
    caller.sent_at.clear()
    caller.echoes = caller.frames_sent = 0
    await caller.speak()
    await wait_until(lambda: caller.echoes == caller.frames_sent > 0, timeout=10, what=what)


async def test_every_session_is_in_the_directory_with_the_node_that_runs_it(
    make_nodes: NodesFactory, redis_client: Redis
) -> None:
    nodes = await make_nodes("n1", "n2", "n3")
    started = {}
    for node in nodes:
        bot = await node.start_bot("echo", max_duration=120)
        await joined(node, bot["session_id"])
        started[bot["session_id"]] = node.node_id

    listed = await wait_until(lambda: _all_joined(redis_client, started), what="every session joined in Redis")
    assert {sid: v["node_id"] for sid, v in listed.items() if sid in started} == started
    assert await members(redis_client, "cf:nodes") == {"n1", "n2", "n3"}
    for node in nodes:
        assert await redis_client.exists(f"cf:lease:{node.node_id}")
        assert await members(redis_client, f"cf:node:{node.node_id}:sessions") == {
            sid for sid, owner in started.items() if owner == node.node_id}

    # An ended session stays listed, ended, under its node; it leaves the node's live set.
    sid, owner = next(iter(started.items()))
    node = next(n for n in nodes if n.node_id == owner)
    status, _, _ = await node.http("DELETE", f"/sessions/{sid}")
    assert status == 200
    ended = await wait_until(lambda: _finished(redis_client, sid), what="the stopped session ended in Redis")
    assert ended["node_id"] == owner and ended["end_reason"] == "stopped"
    assert sid not in await members(redis_client, f"cf:node:{owner}:sessions")


async def _all_joined(redis: Redis, sids: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    listed = await directory(redis)
    return listed if all(listed.get(s, {}).get("state") == "joined" for s in sids) else None


async def _finished(redis: Redis, sid: str) -> dict[str, Any] | None:
    v = await view(redis, sid)
    return v if v is not None and v["state"] in FINISHED else None


async def test_a_killed_node_is_cleaned_up_once_its_sessions_failed_node_lost_and_its_rooms_deleted_once(
    make_nodes: NodesFactory, redis_client: Redis, witness: RestWitness, sandbox_rest: DailyRest
) -> None:
    doomed, *survivors = await make_nodes("n1", "n2", "n3", n1={"daily": {"room_pool": 2}})
    bot = await doomed.start_bot("echo", max_duration=120)
    await joined(doomed, bot["session_id"])
    caller = await caller_in(bot)
    await echoed(caller, "the doomed node's bot echoes")  # mid-call
    other = await survivors[0].start_bot("echo", max_duration=120)
    await joined(survivors[0], other["session_id"])
    # The doomed node's ledger: the session's room and two pooled rooms (the pool refilled).
    ledger = await wait_until(lambda: _ledger_of(redis_client, "n1", at_least=3), what="n1's ledger mirrored")
    assert bot["room_url"].rsplit("/", 1)[1] in ledger
    workers = doomed.descendants()

    doomed.kill()
    killed_at = time.monotonic()
    lost = await wait_until(lambda: _finished(redis_client, bot["session_id"]), timeout=LEASE_S + 10,
                            what="the killed node's session marked finished")
    marked_at = time.monotonic()
    assert lost["state"] == "failed" and lost["end_reason"] == "node_lost" and lost["node_id"] == "n1"
    await wait_until(lambda: all(witness.deletes_of(r) for r in ledger), timeout=LEASE_S + 10,
                     what="every room of the killed node deleted")
    deleted_at = max(c.at for c in witness.calls if c.method == "DELETE" and c.path.rsplit("/", 1)[1] in ledger)
    await wait_until(lambda: _forgotten(redis_client, "n1"), timeout=10, what="the killed node forgotten")
    await asyncio.sleep(2 * LEASE_S)  # survivors keep judging: nobody may clean it up again

    print(f"\ncleanup after SIGKILL (lease_s={LEASE_S:g}): node_lost marked {marked_at - killed_at:.2f} s, "
          f"rooms deleted {deleted_at - killed_at:.2f} s after the kill")
    assert {r: witness.deletes_of(r) for r in ledger} == {r: 1 for r in ledger}
    live = {r["name"] for r in (await sandbox_rest.ok("GET", "/rooms"))["data"]}
    assert not live & ledger
    # The survivors' own session and rooms are untouched.
    assert other["room_url"].rsplit("/", 1)[1] in live
    assert (await view(redis_client, other["session_id"]) or {}).get("state") == "joined"
    assert await members(redis_client, "cf:nodes") == {"n2", "n3"}
    await wait_until(lambda: not any(alive(p) for p in workers), timeout=15, what="the killed node's workers exit")
    await caller.conn.leave()


async def _ledger_of(redis: Redis, node: str, at_least: int) -> set[str] | None:
    rooms = await members(redis, f"cf:node:{node}:rooms")
    return rooms if len(rooms) >= at_least else None


async def _forgotten(redis: Redis, node: str) -> bool:
    return not await redis.sismember("cf:nodes", node) and not await redis.exists(f"cf:node:{node}:rooms")


RATE = 5.0  # requests a second; the default class saves up to 5 s of them (25)
BURST = RATE * 5
PER_NODE = 15

RATE_NODE = """
import asyncio, sys, time
import aiohttp
from supervisor.cluster import Cluster
from supervisor.daily_rest import DailyREST

async def main(redis_url, api_url, node_id, room_url, start_at, n):
    cluster = Cluster(redis_url, node_id, "http://127.0.0.1:9", 2.0)
    await cluster.start()
    async with aiohttp.ClientSession() as http:
        rest = DailyREST("test-key", http, api_url=api_url, requests_per_second={rate})
        rest.shared_limit = cluster.rate_limit
        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(rest.get_token(room_url) for _ in range(n)))
    print("fallbacks", cluster.rate_limit.fallbacks, flush=True)
    await cluster.stop()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6])))
"""


async def test_the_daily_rate_limit_is_shared_by_every_node(
    redis_server: RedisServer, witness: RestWitness, sandbox_rest: DailyRest
) -> None:
    """Three nodes (DailyREST with the cluster's buckets, each its own process) ask for
    meeting tokens at once: "Daily" sees no more than one bucket allows over any window."""
    room = await sandbox_rest.ok("POST", "/rooms", json={})
    start_at = time.time() + 2.0  # every process connected by then
    script = RATE_NODE.replace("{rate}", repr(RATE))
    procs = [subprocess.Popen([sys.executable, "-c", script, redis_server.url, witness.api_url, f"rate{i}", room["url"],
                               str(start_at), str(PER_NODE)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
             for i in range(3)]
    outs = await asyncio.gather(*(asyncio.to_thread(p.communicate, timeout=60) for p in procs))
    assert all(p.returncode == 0 for p in procs), outs
    assert all("fallbacks 0" in out for out, _ in outs), outs  # Redis was there: no node used its own bucket

    times = sorted(c.at for c in witness.calls if c.path == "/v1/meeting-tokens")
    assert len(times) == 3 * PER_NODE
    assert all(c.status == 200 for c in witness.calls)
    # Over every window from any request on, at most the bucket's burst plus its refill
    # (one token of slack for the hop between Redis's clock and the witness's).
    worst = max(sum(1 for t in times[i:] if t - start <= w) - (BURST + RATE * w)
                for i, start in enumerate(times) for w in (0.2, 0.5, 1.0, 2.0))
    assert worst <= 1.0, f"the cluster went {worst:.1f} requests over the shared bucket"


# Longer than the outage below. Past its lease a node cut off from Redis must assume it was
# declared lost and ends its calls itself, so no session has two bots (tests/cluster/test_fencing.py).
OUTAGE_LEASE_S = 9.0


async def test_a_redis_outage_shorter_than_the_lease_costs_only_the_directory_and_everything_is_republished(
    make_nodes: NodesFactory, redis_server: RedisServer, redis_client: Redis
) -> None:
    longer = {"cluster": {"lease_s": OUTAGE_LEASE_S}}
    nodes = await make_nodes("n1", "n2", "n3", n1=longer, n2=longer, n3=longer)
    bots = {}
    for node in nodes:
        bot = await node.start_bot("echo", max_duration=120)
        await joined(node, bot["session_id"])
        bots[node.node_id] = bot
    caller = await caller_in(bots["n2"])
    await echoed(caller, "echo before the outage")
    await wait_until(lambda: _all_joined(redis_client, {b["session_id"]: n for n, b in bots.items()}),
                     what="every session in the directory")

    redis_server.stop()
    for node in nodes:
        await node.http("GET", "/sessions")  # reads the directory: the node finds Redis gone now
        assert node.proc is not None and node.proc.poll() is None
        status, _, _ = await node.http("GET", "/livez")
        assert status == 200
        assert (await node.session(bots[node.node_id]["session_id"]))["state"] == "joined"
    await echoed(caller, "echo during the outage")

    redis_server.start()  # same port, empty
    back_at = time.monotonic()
    await redis_client.connection_pool.disconnect()
    await wait_until(lambda: _all_joined(redis_client, {b["session_id"]: n for n, b in bots.items()}), timeout=10,
                     what="every session re-published")
    await wait_until(lambda: _leases(redis_client, nodes), timeout=10, what="every lease held again")
    print(f"\ndirectory whole again {time.monotonic() - back_at:.2f} s after Redis returned")
    await asyncio.sleep(OUTAGE_LEASE_S * 4 / 3)  # long enough to judge: nobody may be judged lost
    assert await _leases(redis_client, nodes)
    for node in nodes:
        v = await view(redis_client, bots[node.node_id]["session_id"])
        assert v is not None and v["state"] == "joined", v
        assert not await redis_client.exists(f"cf:cleanup:{node.node_id}")
    await echoed(caller, "echo after the outage")
    for node in nodes:
        events = [e.get("event", "") for e in node.log_events()]
        assert sum(1 for e in events if e.startswith("redis unavailable")) == 1, (node.node_id, events)
        assert sum(1 for e in events if e == "redis back") == 1, (node.node_id, events)
    await caller.conn.leave()


async def _leases(redis: Redis, nodes: list[Node]) -> bool:
    return all([await redis.exists(f"cf:lease:{n.node_id}") for n in nodes]) and \
        await members(redis, "cf:nodes") == {n.node_id for n in nodes}


async def test_redis_operations_per_session_lifecycle(make_nodes: NodesFactory, redis_client: Redis) -> None:
    """A measurement, not a limit: commands Redis served per session (start, join, stop,
    end), the background (leases, judging) over the same time subtracted."""
    node, _ = await make_nodes("n1", "n2")
    n = 6
    await asyncio.sleep(1.0)
    idle_before = await _commands(redis_client)
    idle_started = time.monotonic()
    await asyncio.sleep(3.0)
    idle_rate = (await _commands(redis_client) - idle_before) / (time.monotonic() - idle_started)

    before, by_before = await _commands(redis_client), await _by_command(redis_client)
    started = time.monotonic()
    for _ in range(n):
        bot = await node.start_bot("echo", max_duration=120)
        await joined(node, bot["session_id"])
        status, _, _ = await node.http("DELETE", f"/sessions/{bot['session_id']}")
        assert status == 200
        await node.wait_session(bot["session_id"], lambda d: d["state"] in FINISHED, what="the session ended")
    await asyncio.sleep(0.5)  # the last view's write lands
    took = time.monotonic() - started
    total = await _commands(redis_client) - before
    by_after = await _by_command(redis_client)
    by = {k: v - by_before.get(k, 0) for k, v in by_after.items() if v != by_before.get(k, 0)}
    per_session = (total - idle_rate * took) / n
    # Redis counts the four commands inside every rate-limit script call too; the client sent one.
    sent = (total - 4 * by.get("evalsha", 0) - idle_rate * took) / n
    print(f"\nredis commands per session lifecycle: {per_session:.1f} as Redis counts them, {sent:.1f} sent by the "
          f"node ({total} over {n} sessions in {took:.1f} s; background {idle_rate:.1f}/s for 2 nodes); by command: {by}")
    assert per_session > 0


async def _commands(redis: Redis) -> int:
    """Every command Redis has served (INFO commandstats), INFO itself excluded."""
    return sum((await _by_command(redis)).values())


async def _by_command(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}

