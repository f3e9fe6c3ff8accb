#!/usr/bin/env python3
"""The floor under ``supervisor_cpu_us_per_frame``: what a bare Python ROUTER costs to
forward paced two-part frames, with nothing else in the path.

N peer processes (DEALERs) each send a [header, 640-byte PCM] frame every 20 ms; one
uvloop process forwards every frame back to its sender, first with pyzmq's asyncio API
(one future per message), then the way ``protocol.transport.LoopSocket`` does it (the
loop's reader callback drains every ready message). Prints CPU microseconds per
forwarded frame for each, split into the Python thread and libzmq's I/O thread.
Compare with ``callfleet bench`` on the same machine.

    .venv/bin/python scripts/forwarding_floor.py [--peers 20] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import time

import uvloop
import zmq
import zmq.asyncio

from callfleet.procfs import thread_cpu_seconds

HEADER = b"\x01\x94\xa1o\x01\xcd>\x80\x01"
FPS = 50


def peer(index: int, endpoint: str, seconds: float) -> None:
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


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def forward(endpoint: str, mode: str, peers: int, seconds: float) -> tuple[float, float]:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    procs = [mp.Process(target=peer, args=(i, endpoint, seconds)) for i in range(peers)]
    for p in procs:
        p.start()
    before, frames, end = cpu_seconds(), 0, time.monotonic() + seconds + 0.5
    threads_before = thread_cpu_seconds(os.getpid())
    if mode == "asyncio":
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
    used = cpu_seconds() - before
    io = sum(v - threads_before.get(k, 0.0) for k, v in thread_cpu_seconds(os.getpid()).items() if k.startswith("ZMQbg/IO"))
    for p in procs:
        p.join()
    sock.close(0)
    ctx.term()
    return used / max(frames, 1) * 1e6, io / max(frames, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6.0)
    ns = parser.parse_args()
    for mode in ("asyncio", "reader"):
        us, io = uvloop.run(forward(f"ipc:///tmp/callfleet-floor-{os.getpid()}-{mode}.sock", mode, ns.peers,
                                    ns.seconds))
        print(f"{mode:8s} forwarder: {us:.1f} us CPU per frame at {ns.peers * FPS} frames/s "
              f"(Python thread {us - io:.1f}, libzmq I/O thread {io:.1f})")


if __name__ == "__main__":
    main()
