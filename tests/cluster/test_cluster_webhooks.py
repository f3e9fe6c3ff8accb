"""Webhooks in a cluster: real redis-server, two real supervisors, one real receiver. Each
event is claimed in Redis before it is sent, so ``session.ended`` arrives once, whichever
node ends the session: its own, or the survivor that declared its node lost (and then the
paused node, waking up and ending the session too, sends nothing)."""

from __future__ import annotations

import base64
import secrets
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.cluster.conftest import LEASE_S, Node, NodesFactory
from tests.doubles.webhook_receiver import WebhookReceiver, verify
from tests.waiting import wait_until

SECRET_ENV = "CALLFLEET_TEST_WEBHOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
# The paused node's workers must not leave the call on their own while it is stopped.
PATIENT_WORKERS = {"ping_interval_s": 0.5, "ping_timeout_s": 120}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.close()


def hooked(receiver: WebhookReceiver, **more: dict[str, Any]) -> dict[str, Any]:
    """A node's overrides: webhooks to ``receiver``, signed with the cluster's one secret."""
    return {"webhooks": {"url": receiver.url, "secret_env": SECRET_ENV, "retry_base_s": 0.1, "retry_max_s": 0.5},
            "env": {SECRET_ENV: SECRET}, **more}


async def joined(node: Node, sid: str) -> dict[str, Any]:
    return await node.wait_session(sid, lambda d: d["state"] == "joined", timeout=60, what="the bot joined")


def left_to_first_claimer(node: Node, sid: str) -> list[dict[str, Any]]:
    return [e for e in node.log_events() if e.get("event") == "webhook left to the node that claimed it first"
            and e.get("session_id") == sid]


async def test_a_session_stopped_through_another_node_is_announced_once(
        make_nodes: NodesFactory, redis_client: Redis, receiver: WebhookReceiver) -> None:
    n1, n2 = await make_nodes("n1", "n2", n1=hooked(receiver), n2=hooked(receiver))
    bot = await n1.start_bot("echo", max_duration=300)
    sid = bot["session_id"]
    await joined(n1, sid)
    status, _, _ = await n2.http("DELETE", f"/sessions/{sid}")  # forwarded to n1, which runs it
    assert status == 200
    await wait_until(lambda: len(receiver.delivered()) == 2, timeout=30, what="started and ended delivered")
    ended = receiver.delivered("session.ended")
    assert len(receiver.delivered("session.started")) == len(ended) == 1
    assert verify(SECRET, ended[0]) and ended[0].event["data"]["end_reason"] == "stopped"
    # Each event was claimed once, by the node that ran the session.
    for kind in ("session.started", "session.ended"):
        assert await redis_client.get(f"cf:webhook:{sid}:{kind}") == b"n1"
        assert 0 < await redis_client.ttl(f"cf:webhook:{sid}:{kind}")


async def test_a_session_ended_by_the_survivor_and_then_by_its_fenced_node_is_announced_once(
        make_nodes: NodesFactory, redis_client: Redis, receiver: WebhookReceiver) -> None:
    paused, survivor = await make_nodes("n1", "n2", n1=hooked(receiver, pool=PATIENT_WORKERS), n2=hooked(receiver))
    bot = await paused.start_bot("echo", max_duration=300)
    sid = bot["session_id"]
    await joined(paused, sid)
    await wait_until(lambda: receiver.delivered("session.started"), timeout=30, what="session.started delivered")

    paused.signal(signal.SIGSTOP)
    try:
        # The survivor declares n1 lost, marks the session node_lost and announces its end.
        ended = await wait_until(lambda: receiver.delivered("session.ended"), timeout=LEASE_S + 30,
                                 what="the survivor's session.ended")
    finally:
        paused.signal(signal.SIGCONT)
    data = ended[0].event["data"]
    assert data["session_id"] == sid and data["state"] == "failed" and data["end_reason"] == "node_lost"
    assert verify(SECRET, ended[0])
    assert await redis_client.get(f"cf:webhook:{sid}:session.ended") == b"n2"
    # n1 wakes, finds itself fenced and ends the session too: its event was claimed already.
    await wait_until(lambda: left_to_first_claimer(paused, sid), timeout=60,
                     what="the fenced node leaving session.ended to the survivor")
    # n1 ended the session as well (as call_ended when it first sees the survivor's room
    # delete, or node_lost when it first sees its fencing: whichever comes first).
    mine = await paused.session(sid)
    assert mine["ended_at"] is not None and mine["end_reason"] in ("call_ended", "node_lost"), mine
    assert len(receiver.delivered("session.ended")) == 1
    assert len(receiver.delivered("session.started")) == 1
    assert [e for e in survivor.log_events() if str(e.get("event", "")).startswith("webhook dropped")] == []
