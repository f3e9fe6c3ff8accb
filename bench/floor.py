"""The floor under ``supervisor_cpu_us_per_frame``: what a bare Python ROUTER costs to
forward paced two-part frames, with nothing else in the path.

N peer processes (DEALERs) each send a [header, 640-byte PCM] frame every 20 ms; one
uvloop process forwards every frame back to its sender, either with pyzmq's asyncio API
(one future per message) or the way ``callfleet.loop_socket.LoopSocket`` does it (the loop's
reader callback drains every ready message). The result is CPU microseconds per forwarded
frame, split into the Python thread and libzmq's I/O thread.

    .venv/bin/python scripts/forwarding_floor.py [--peers 20] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import multiprocessing as mp
import os
import time

import msgspec
import uvloop
import zmq
import zmq.asyncio

from callfleet.procfs import thread_cpu_seconds

HEADER = b"\x01\x94\xa1o\x01\xcd>\x80\x01"
FPS = 50


class ForwardMode(enum.Enum):
    ASYNCIO = "asyncio"  # pyzmq's asyncio API, a future per message
    READER = "reader"  # the loop's reader callback drains every ready message, as Channel does


class FloorResult(msgspec.Struct, frozen=True):
    mode: ForwardMode
    peers: int
    frames: int
    us_per_frame: float  # the forwarding process's CPU, all threads
    io_us_per_frame: float  # of which libzmq's I/O thread

    @property
    def python_us_per_frame(self) -> float:
        return self.us_per_frame - self.io_us_per_frame


def _peer(index: int, endpoint: str, seconds: float) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, b"p%d" % index)
    sock.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    pcm, started, sent = bytes(640), time.monotonic(), 0
    while time.monotonic() - started < seconds:
        due = started + sent / FPS
        while (wait := due - time.monotonic()) > 0:
            if dict(poller.poll(wait * 1000)).get(sock):
                while True:
                    try:
                        sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
        sock.send_multipart([HEADER, pcm])
        sent += 1
    time.sleep(0.3)
    sock.close(0)
    ctx.term()


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def forward(mode: ForwardMode, peers: int, seconds: float) -> FloorResult:
    """Forward ``peers`` paced peers' frames for ``seconds`` on the running loop (forking the
    peers from this process); raises ``zmq.ZMQError`` if the endpoint cannot be bound."""
    endpoint = f"ipc:///tmp/callfleet-floor-{os.getpid()}-{mode.value}.sock"
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    procs = [mp.Process(target=_peer, args=(i, endpoint, seconds)) for i in range(peers)]
    for p in procs:
        p.start()
    before, frames, end = _cpu_seconds(), 0, time.monotonic() + seconds + 0.5
    threads_before = thread_cpu_seconds(os.getpid())
    if mode is ForwardMode.ASYNCIO:
        while time.monotonic() < end:
            try:
                parts = await asyncio.wait_for(sock.recv_multipart(copy=False), 1)
            except TimeoutError:
                break
            sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
            frames += 1
    else:
        raw = zmq.Socket.shadow(sock.underlying)
        loop = asyncio.get_running_loop()
        loop.remove_reader(raw.fileno())  # the asyncio socket's own reader

        def drain() -> None:
            nonlocal frames
            while True:
                try:
                    parts = raw.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    return
                raw.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
                frames += 1

        loop.add_reader(raw.fileno(), drain)
        await asyncio.sleep(seconds + 0.5)
        loop.remove_reader(raw.fileno())
    used = _cpu_seconds() - before
    io = sum(v - threads_before.get(k, 0.0) for k, v in thread_cpu_seconds(os.getpid()).items()
             if k.startswith("ZMQbg/IO"))
    for p in procs:
        p.join()
    sock.close(0)
    ctx.term()
    n = max(frames, 1)
    return FloorResult(mode=mode, peers=peers, frames=frames, us_per_frame=round(used / n * 1e6, 1),
                       io_us_per_frame=round(io / n * 1e6, 1))


def measure(mode: ForwardMode, peers: int, seconds: float) -> FloorResult:
    """One forwarding run on a loop of its own; call it where no other loop is running."""
    return uvloop.run(forward(mode, peers, seconds))


def describe(result: FloorResult) -> str:
    return (f"{result.mode.value:8s} forwarder: {result.us_per_frame:.1f} us CPU per frame at "
            f"{result.peers * FPS} frames/s (Python thread {result.python_us_per_frame:.1f}, "
            f"libzmq I/O thread {result.io_us_per_frame:.1f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0)
    ns = parser.parse_args(argv)
    for mode in ForwardMode:
        print(describe(measure(mode, ns.peers, ns.seconds)), flush=True)
    return 0
