"""Cluster HTTP end to end: real supervisors sharing one real Redis and one
sandbox. Any node answers for any session, a start goes where there is a free worker, and
429 comes only when the whole cluster is full."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from sandbox.caller import Caller, CallerOptions
from tests.cluster.conftest import NodeFactory, RestWitness
from tests.conftest import SandboxProcess
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until


async def listed(node: SupervisorProcess, **params: str) -> dict[str, dict[str, Any]]:
    status, body, _ = await node.http("GET", "/sessions", params=params)
    assert status == 200, body
    return {view["session_id"]: view for view in body["data"]}


async def joined_on(node: SupervisorProcess, bot: dict[str, Any]) -> dict[str, Any]:
    return await node.wait_session(bot.get("session_id") or bot["sessionId"], lambda d: d["state"] == "joined")


async def engine_echo(ws: aiohttp.ClientWebSocketResponse, caller: Caller, speaking: asyncio.Future[None]) -> int:
    """An echo engine: each caller frame (participant header stripped) is said back."""
    heard = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            msg = await ws.receive(timeout=0.5)
        except TimeoutError:
            if speaking.done() and heard >= 10:
                break
            continue
        if msg.type == aiohttp.WSMsgType.BINARY:
            n = msg.data[0]
            assert msg.data[1 : 1 + n].decode() == caller.participant_id
            await ws.send_bytes(msg.data[1 + n :])
            heard += 1
        elif msg.type != aiohttp.WSMsgType.TEXT:
            break
    return heard


async def test_every_session_is_visible_and_stoppable_from_every_node(make_nodes: NodeFactory) -> None:
    n1, n2, n3 = await make_nodes("n1", "n2", "n3")
    echo = await n1.start_bot("echo")
    stream = await n2.start_bot("stream")
    await joined_on(n1, echo)
    # GET /sessions on every node lists both, each with its node; ?state= is honoured.
    for node in (n1, n2, n3):
        views = await wait_until(lambda node=node: _both(node, echo, stream), what=f"both sessions on {node.url}")
        assert views[echo["session_id"]]["node_id"] == "n1" and views[stream["session_id"]]["node_id"] == "n2"
        joined = await listed(node, state="joined")
        assert echo["session_id"] in joined and all(v["state"] == "joined" for v in joined.values())
    detail = await n3.session(echo["session_id"])  # through a node that does not own it
    assert detail["node_id"] == "n1" and detail["state"] == "joined" and detail["worker_pid"]

    # app-message through a non-owner reaches the call.
    caller = Caller(CallerOptions(room_url=echo["room_url"], token=echo["token"], seconds=0.5, await_echo=True))
    await caller.join()
    await caller.speak()
    status, reply, _ = await n2.http("POST", f"/sessions/{echo['session_id']}/app-message", json={"message": {"via": "n2"}})
    assert status == 200 and reply == {"sent": True}
    await wait_until(lambda: [m for m, _ in caller.app_messages] == [{"via": "n2"}], what="the app message via n2")

    # The stream WebSocket through a non-owner: config, then events, and audio both ways.
    url = f"{n3.url}/sessions/{stream['session_id']}/stream?token={stream['stream_token']}"
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        config = await ws.receive_json(timeout=10)
        assert config["type"] == "config" and config["session_id"] == stream["session_id"]
        await joined_on(n2, stream)
        # A wrong token is refused as the owner refuses it (asked while the session lives:
        # it ends once its caller leaves below).
        status, reply, _ = await n1.http("GET", f"/sessions/{stream['session_id']}/stream", params={"token": "wrong"})
        assert status == 401 and reply["error"] == "authentication-error"
        talker = Caller(CallerOptions(room_url=stream["room_url"], token=stream["token"], seconds=1.0, await_echo=True,
                                      await_echo_timeout_s=15))
        await talker.join()
        speaking = asyncio.ensure_future(talker.speak())
        assert await engine_echo(ws, talker, speaking) >= 10
        await speaking
        await wait_until(lambda: talker.echoes >= talker.frames_sent - 2, timeout=5, what="echo through a relayed engine")
        await talker.leave(0)

    # DELETE through a non-owner ends the session on its owner.
    status, reply, _ = await n3.http("DELETE", f"/sessions/{echo['session_id']}")
    assert status == 200 and reply == {"session_id": echo["session_id"], "stopping": True}
    done = await n1.wait_session(echo["session_id"], lambda d: d["state"] == "ended")
    assert done["end_reason"] == "stopped"
    await wait_until(lambda: _state_on(n3, echo["session_id"], "ended"), what="the end seen from n3")
    status, reply, _ = await n2.http("POST", f"/sessions/{echo['session_id']}/app-message", json={"message": {}})
    assert status == 409
    status, reply, _ = await n2.http("GET", "/sessions/no-such-session")
    assert status == 404 and reply["error"] == "not-found"
    await caller.leave(0)
    await n1.http("DELETE", f"/sessions/{stream['session_id']}")


async def _both(node: SupervisorProcess, a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    views = await listed(node)
    return views if a["session_id"] in views and b["session_id"] in views else None


async def _state_on(node: SupervisorProcess, sid: str, state: str) -> bool:
    status, body, _ = await node.http("GET", f"/sessions/{sid}")
    return status == 200 and body["state"] == state


async def placeable(redis: Redis, node_id: str) -> bool:
    """Whether other nodes would place a start on ``node_id`` now (lease held, capacity > 0)."""
    capacity = await redis.hget(f"cf:node:{node_id}", "capacity")  # type: ignore[misc]
    return bool(await redis.exists(f"cf:lease:{node_id}")) and int(capacity or 0) > 0


async def test_a_start_on_a_full_node_lands_on_another_and_429_only_when_all_are_full(
        make_nodes: NodeFactory, redis_client: Redis) -> None:
    full = {"pool": {"min_idle": 1, "max_workers": 1}}
    n1, n2 = await make_nodes("n1", "n2", n1=full, n2=full)
    first = await n1.start_bot("echo")
    await joined_on(n1, first)
    await wait_until(lambda: placeable(redis_client, "n2"), what="n2 published with a free worker")
    # n1 is full: the start goes to n2, and the reply keeps the shape of the endpoint asked.
    status, moved, _ = await n1.http("POST", "/start", json={"createDailyRoom": True, "profile": "echo"})
    assert status == 200 and set(moved) == {"dailyRoom", "dailyToken", "sessionId", "streamToken"}, moved
    detail = await joined_on(n2, moved)
    assert detail["node_id"] == "n2"
    caller = Caller(CallerOptions(room_url=moved["dailyRoom"], token=moved["dailyToken"], seconds=1.0, await_echo=True))
    await caller.join()
    await caller.speak()
    await wait_until(lambda: caller.echoes == 50, what="echo from the node that took the start")
    # Both full: 429 with Retry-After, from either node.
    for node in (n1, n2):
        status, body, headers = await node.http("POST", "/bots/start", json={"bot_profile": "echo"})
        assert status == 429 and body["error"] == "rate-limit-error" and headers["Retry-After"] == "1", body
    await caller.leave(0)
    for sid in (first["session_id"], moved["sessionId"]):
        await n2.http("DELETE", f"/sessions/{sid}")


# -- start latency, printed -----------------------------------------------------------------------


async def _start_to_joined(entry: SupervisorProcess, owner: SupervisorProcess, node_id: str | None) -> float:
    """ms from POST /bots/start on ``entry`` until ``owner`` reports the bot joined, having
    checked that the session runs on the cluster node ``node_id`` (None: a node alone, with
    nowhere else to go), so a figure never measures a start that went elsewhere; then the
    session is stopped and the owner's pool is idle again, so every start is alike."""
    t0 = time.perf_counter()
    status, bot, _ = await entry.http("POST", "/bots/start", json={"bot_profile": "echo"})
    assert status == 200, bot
    sid = bot["session_id"]

    async def joined() -> dict[str, Any] | None:
        status, detail, _ = await owner.http("GET", f"/sessions/{sid}")
        return dict(detail) if status == 200 and detail["state"] == "joined" else None

    # Polled every 10 ms: the figures are only as fine as the polling.
    detail = await wait_until(joined, timeout=20, what=f"{sid} joined", interval=0.01)
    elapsed = (time.perf_counter() - t0) * 1000
    assert node_id is None or detail["node_id"] == node_id, detail
    await owner.http("DELETE", f"/sessions/{sid}")
    await owner.wait_session(sid, lambda d: d["state"] in ("ended", "failed"))
    await owner.workers(lambda ws: any(w["state"] == "idle" for w in ws) and len(ws) == 1)
    return elapsed


async def test_start_latency_in_cluster_mode_against_a_single_node(make_nodes: NodeFactory, tmp_path: Path,
                                                                   sandbox_proc: SandboxProcess,
                                                                   witness: RestWitness) -> None:
    """Every start, alone, placed locally or handed to another node, joins on the node
    meant to run it; how long each took is printed (a measurement, not a limit)."""
    runs = 10
    (tmp_path / "single").mkdir()
    # The same sandbox behind the same REST witness as the cluster's nodes, one at a time.
    single = SupervisorProcess(tmp_path / "single", sandbox_proc.port, pool={"min_idle": 1, "max_workers": 2},
                               daily={"api_url": witness.api_url})
    single.start()
    try:
        await _start_to_joined(single, single, None)  # warm-up: the first worker's first call is slower
        alone = [await _start_to_joined(single, single, None) for _ in range(runs)]
    finally:
        single.stop()
    n1, n2 = await make_nodes("n1", "n2", n1={"pool": {"min_idle": 1, "max_workers": 1}},
                              n2={"pool": {"min_idle": 1, "max_workers": 2}})
    await _start_to_joined(n2, n2, "n2")  # warm-up, as above
    local = [await _start_to_joined(n2, n2, "n2") for _ in range(runs)]
    holder = await n1.start_bot("echo")  # n1 full: its starts are handed to n2
    await joined_on(n1, holder)
    handed = [await _start_to_joined(n1, n2, "n2") for _ in range(runs)]
    assert (await n1.session(holder["session_id"]))["node_id"] == "n1"  # what kept n1 full
    await n1.http("DELETE", f"/sessions/{holder['session_id']}")

    def figures(ms: list[float]) -> str:
        return f"p50 {statistics.median(ms):.0f} ms, mean {statistics.fmean(ms):.0f} ms, max {max(ms):.0f} ms"

    print(f"\nstart -> joined, {runs} sequential /bots/start each after one warm-up, same sandbox and REST witness:")
    print(f"  single node            {figures(alone)}")
    print(f"  cluster, placed local  {figures(local)}  (added p50 {statistics.median(local) - statistics.median(alone):+.0f} ms)")
    print(f"  cluster, handed off    {figures(handed)}  (added p50 {statistics.median(handed) - statistics.median(alone):+.0f} ms)")
