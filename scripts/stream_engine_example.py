#!/usr/bin/env python3
"""A minimal external bot engine for callfleet's ``stream`` sessions.

It starts a stream session, attaches to its WebSocket, greets whoever joins with an app
message, and echoes every participant's audio back into the call. Run it against a
supervisor started by ``scripts/run``:

    .venv/bin/python scripts/stream_engine_example.py [--api http://127.0.0.1:7940] [--profile stream]

then join the printed room with ``callfleet caller ROOM_URL --token TOKEN``.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp


async def run(api: str, profile: str, seconds: float) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/bots/start", json={"bot_profile": profile}) as resp:
            started = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"start failed: {resp.status} {started}")
        print(f"room:  {started['room_url']}\ntoken: {started['token']}")
        url = f"{api.replace('http', 'ws', 1)}/sessions/{started['session_id']}/stream?token={started['stream_token']}"
        async with http.ws_connect(url) as ws:
            config = await ws.receive_json()
            print(f"config: profile={config['profile']} audio={config['audio']}")
            next_id = 1
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while loop.time() < deadline:
                try:
                    msg = await ws.receive(timeout=1.0)
                except TimeoutError:
                    continue
                if msg.type == aiohttp.WSMsgType.BINARY:
                    id_len = msg.data[0]
                    await ws.send_bytes(msg.data[1 + id_len :])  # echo the PCM back
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(msg.data)
                    if event.get("event") == "participant_joined":
                        participant = event["data"]["participant"]
                        await ws.send_json({"type": "command", "id": next_id, "command": "send_app_message",
                                            "args": {"message": {"hello": participant["info"].get("userName")}}})
                        next_id += 1
                    elif event.get("type") != "event" or event["event"] not in ("active_speaker_changed",):
                        print(event)
                else:
                    print(f"session over: {ws.close_code} {msg.extra or ''}")
                    return
            await ws.send_json({"type": "command", "id": next_id, "command": "leave"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default="http://127.0.0.1:7940")
    parser.add_argument("--profile", default="stream")
    parser.add_argument("--seconds", type=float, default=120)
    ns = parser.parse_args()
    asyncio.run(run(ns.api, ns.profile, ns.seconds))


if __name__ == "__main__":
    main()
