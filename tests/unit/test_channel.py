"""protocol.transport.Channel: the loop-driven ROUTER/DEALER used by supervisor and worker.

Real ZeroMQ sockets over ipc in a temporary directory. The risks these tests pin down are
the edge-triggered ZMQ_FD (a wake-up lost after a send means a stalled session), a drain
that stops at its batch limit, and one bad frame or failing handler stalling the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from callfleet.loop_socket import LoopSocket
from protocol.audio import AudioIn
from protocol.framing import encode
from protocol.messages import Ping, Pong
from protocol.transport import BadFrame, Channel, PeerUnreachable, Received, bind_router, connect_dealer
from tests.waiting import wait_until


class Pair:
    def __init__(self, tmp: Path) -> None:
        self.ctx = zmq.Context()
        endpoint = f"ipc://{tmp}/chan.sock"
        self.router = Channel(bind_router(self.ctx, endpoint), routed=True)
        self.dealer = Channel(connect_dealer(self.ctx, endpoint, "w1"), routed=False)

    def close(self) -> None:
        self.router.close()
        self.dealer.close()
        self.ctx.term()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    p = Pair(tmp_path)
    try:
        yield p
    finally:
        p.close()


async def test_a_drain_delivers_every_ready_message_in_order_past_one_batch(pair: Pair) -> None:
    n = LoopSocket.MAX_BATCH * 3 + 7
    for seq in range(n):
        assert pair.dealer.send_audio(encode(AudioIn("p", seq, 16000, 1)), seq.to_bytes(2, "little") * 320)
        if seq % 100 == 99:
            await asyncio.sleep(0.01)  # below the dealer's high-water mark
    await asyncio.sleep(0.2)  # all of them queued before anyone reads
    got: list[Received] = []
    pair.router.handle(got.append, lambda exc: pytest.fail(str(exc)))
    await wait_until(lambda: len(got) == n, 10, f"all {n} messages")
    assert [g.message.seq for g in got] == list(range(n))
    assert all(g.peer == b"w1" and isinstance(g.pcm, zmq.Frame) for g in got)
    assert got[-1].pcm.bytes[:2] == (n - 1).to_bytes(2, "little")


async def test_bad_frames_go_to_on_bad_and_the_drain_goes_on(pair: Pair) -> None:
    good: list[Received] = []
    bad: list[BadFrame] = []
    pair.router.handle(good.append, bad.append)
    raw = pair.dealer.sock
    raw.send_multipart([b"\x00garbage"])
    raw.send_multipart([b"a", b"b", b"c"])
    raw.send_multipart([encode(AudioIn("p", 1, 16000, 1)), b"odd"])
    await pair.dealer.send_control(Ping(seq=9, sent_at=0.0))
    await wait_until(lambda: len(good) == 1, 10, "the good message")
    assert len(bad) == 3 and all(b.peer == b"w1" for b in bad)
    assert good[0].message == Ping(seq=9, sent_at=0.0)


async def test_a_handler_that_raises_does_not_stall_the_socket(pair: Pair) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    seen: list[int] = []

    def handler(got: Received) -> None:
        seen.append(got.message.seq)
        if got.message.seq == 0:
            raise RuntimeError("bot bug")

    pair.router.handle(handler, lambda exc: None)
    for seq in range(5):
        await pair.dealer.send_control(Ping(seq=seq, sent_at=0.0))
    await wait_until(lambda: len(seen) == 5, 10, "5 messages")
    assert seen == [0, 1, 2, 3, 4]
    assert len(reported) == 1 and isinstance(reported[0]["exception"], RuntimeError)
    loop.set_exception_handler(None)


@pytest.mark.parametrize("reply_from", ["handler", "later"])
async def test_ping_pong_never_loses_a_wake_up(pair: Pair, reply_from: str) -> None:
    """Each side answers the other 1000 times. Replies sent from inside the handler (a
    drain) and from a later callback (outside one) both consume FD edges; a lost one
    would stall the exchange."""
    rounds = 1000
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def reply(send: Any) -> None:
        if reply_from == "handler":
            send()
        else:
            loop.call_soon(send)

    def at_router(got: Received) -> None:
        assert got.peer is not None
        peer = got.peer
        reply(lambda: pair.router.send_audio(encode(AudioIn("p", got.message.seq, 16000, 1)), b"\0\0", to=peer))

    def at_dealer(got: Received) -> None:
        seq = got.message.seq + 1
        if seq == rounds:
            done.set_result(seq)
            return
        reply(lambda: pair.dealer.send_audio(encode(AudioIn("p", seq, 16000, 1)), b"\0\0"))

    pair.router.handle(at_router, lambda exc: pytest.fail(str(exc)))
    pair.dealer.handle(at_dealer, lambda exc: pytest.fail(str(exc)))
    pair.dealer.send_audio(encode(AudioIn("p", 0, 16000, 1)), b"\0\0")
    assert await asyncio.wait_for(done, 20) == rounds


async def test_recv_takes_one_at_a_time_and_survives_a_timeout(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pair.router.recv(), 0.05)
    await pair.dealer.send_control(Pong(seq=1, sent_at=0.0, answered_at=0.0))
    got = await asyncio.wait_for(pair.router.recv(), 5)
    assert got.peer == b"w1" and got.message.seq == 1 and got.pcm is None
    pair.router.handle(lambda got: None, lambda exc: None)
    with pytest.raises(RuntimeError, match="handler"):
        await pair.router.recv()


async def test_control_to_an_unknown_peer_is_unreachable_and_audio_is_dropped(pair: Pair) -> None:
    with pytest.raises(PeerUnreachable, match="not connected"):
        await pair.router.send_control(Ping(seq=1, sent_at=0.0), to=b"nobody")
    assert pair.router.send_audio(encode(AudioIn("p", 1, 16000, 1)), b"\0\0", to=b"nobody") is False


async def test_sends_between_drains_never_swallow_an_arrival(pair: Pair) -> None:
    """A stream arrives while the same socket keeps sending from outside any drain (a
    bot's paced audio, pings): a send that consumes the FD's edge must not leave the
    arrivals unread."""
    n = 3000
    got: list[int] = []
    pair.router.handle(lambda g: got.append(g.message.seq), lambda exc: pytest.fail(str(exc)))
    pair.dealer.handle(lambda g: None, lambda exc: None)

    async def stream() -> None:
        for seq in range(n):
            # send_audio drops a frame when the peer's queue is full (a loaded machine):
            # offer it again, so that every frame is sent and must arrive.
            while not pair.dealer.send_audio(encode(AudioIn("p", seq, 16000, 1)), b"\0\0"):
                await asyncio.sleep(0.001)
            if seq % 20 == 19:
                await asyncio.sleep(0.001)

    async def chatter() -> None:
        while len(got) < n:
            pair.router.send_audio(encode(AudioIn("q", 0, 16000, 1)), b"\0\0", to=b"w1")
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(stream(), chatter()), 20)
    assert got == list(range(n))
