"""A session's log in a cluster: real supervisors sharing one real Redis and one sandbox.
The node that runs (or ran) a session keeps its log; any node answers for it -- the lines,
a follow until the session ends, and the log of a finished session -- and once the node
that ran it has left the cluster, its log is gone with it: 404."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.cluster.conftest import NodesFactory
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until


async def log_lines(node: SupervisorProcess, sid: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{node.url}/sessions/{sid}/logs") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/x-ndjson"
        return [json.loads(line) for line in (await resp.text()).splitlines()]


async def ended(node: SupervisorProcess, sid: str) -> None:
    await node.wait_session(sid, lambda d: d["state"] == "ended", timeout=30, what=f"session {sid} ended")


async def test_any_node_answers_with_a_sessions_log_and_follows_it_until_it_ends(make_nodes: NodesFactory) -> None:
    n1, n2 = await make_nodes("n1", "n2")
    sid = (await n1.start_bot("echo"))["session_id"]
    await n1.wait_session(sid, lambda d: d["state"] == "joined")
    # Live on n1, asked of n2: n1's log, relayed.
    relayed = await wait_until(lambda: log_lines(n2, sid), 20, "the worker's join in the log relayed by n2",
                               until=lambda lines: any(line["event"] == "joined the call" for line in lines))
    assert all(line["session_id"] == sid for line in relayed)
    # Followed through n2: the lines the stop makes the worker log come through, then the reply ends.
    followed: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s, \
            s.get(f"{n2.url}/sessions/{sid}/logs?follow=1") as resp:
        assert resp.status == 200 and resp.content_type == "application/x-ndjson"
        followed.append(json.loads(await resp.content.readline()))
        status, _, _ = await n2.http("DELETE", f"/sessions/{sid}")
        assert status == 200
        async for raw in resp.content:
            followed.append(json.loads(raw))
    events = [line["event"] for line in followed]
    assert "left the call" in events and followed[-1]["state"] == "ended", events
    await ended(n1, sid)
    # Finished on n1, asked of n2: still n1's log, as n1 answers it.
    assert await log_lines(n2, sid) == await log_lines(n1, sid)
    status, body, _ = await n2.http("GET", "/sessions/no-such-session/logs")
    assert status == 404 and body["error"] == "not-found"


async def test_the_log_of_a_session_whose_node_left_the_cluster_is_404(make_nodes: NodesFactory) -> None:
    n1, n2 = await make_nodes("n1", "n2")
    sid = (await n1.start_bot("echo"))["session_id"]
    await n1.wait_session(sid, lambda d: d["state"] == "joined")
    status, _, _ = await n1.http("DELETE", f"/sessions/{sid}")
    assert status == 200
    await ended(n1, sid)
    await asyncio.to_thread(n1.stop)  # a clean stop: n1 leaves the cluster, its sessions.db with it
    status, body, _ = await n2.http("GET", f"/sessions/{sid}/logs")
    assert status == 404 and body["error"] == "not-found", body
    assert body["info"] == f"session {sid} ran on node n1, which has left the cluster; its logs were kept there"
