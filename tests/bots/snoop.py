"""A hosted bot that tries, as an attacker would, to reach what is the operator's, and writes
what it found to ``body["report"]`` (JSON), then returns without joining (after
``body["linger_s"]`` seconds, if given).

It reads its own environment, every ``/proc/PID/environ`` and the supervisor's memory,
connects to the control and event sockets, lists ``run_dir``, opens ``sessions.db``, and
calls the HTTP API without a key. The tests decide what must not be in the report.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

import aiohttp


def _try(fn: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "value": fn()}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc.strerror}"}


def _environs() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            found[entry.name] = _try(lambda e=entry: (e / "environ").read_bytes().decode(errors="replace"))
    return found


def _connect(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
    return "connected"


def _read_memory(pid: int) -> str:
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    start = int(maps[0].split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        return mem.read(16).hex()


async def bot(runner_args: Any) -> None:
    body = runner_args.body
    run_dir = Path(body["run_dir"])
    report: dict[str, Any] = {
        "uid": os.getuid(),
        "environ": dict(os.environ),
        "proc_environ": _environs(),
        "supervisor_memory": _try(lambda: _read_memory(int(body["supervisor_pid"]))),
        "control_socket": _try(lambda: _connect(str(run_dir / "control.sock"))),
        "events_socket": _try(lambda: _connect(str(run_dir / "events.sock"))),
        "run_dir_listing": _try(lambda: sorted(os.listdir(run_dir))),
        "sessions_db": _try(lambda: (run_dir / "sessions.db").read_bytes()[:64].hex()),
    }
    async with aiohttp.ClientSession() as http, http.get(body["http"] + "/sessions") as resp:
        report["http_sessions_status"] = resp.status
    path = Path(body["report"])
    await asyncio.to_thread(path.write_text, json.dumps(report))
    if body.get("linger_s"):  # stay alive, holding this session's environment, for another bot to look for
        await asyncio.sleep(float(body["linger_s"]))
