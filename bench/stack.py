"""The processes ``callfleet bench`` measures: a sandbox and a supervisor on free loopback
ports, with a temporary run_dir, started from a checkout and torn down after the run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKER_USER_ENV = "CALLFLEET_BENCH_WORKER_USER"  # pool.worker_user for the bench's supervisor, when set


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """A sandbox and a supervisor run from ``repo`` (this checkout by default, or another
    one, e.g. a worktree of an older commit, to measure it with today's bench).

    The supervisor is given the benched ``profile`` of ``profiles`` alone, as the peer runs
    only its bot: what it keeps warm and preloads is what that profile needs, not every
    shipped profile's (the shipped Daily Bots profiles preload every provider's SDK)."""

    def __init__(self, sessions: int, repo: Path = REPO, profiles: Path | None = None,
                 profile: str = "echo", merge_pages: bool = False) -> None:
        self.repo = repo.resolve()
        # The command line's module: cli/ since it left callfleet/ (an older checkout, for a
        # before/after comparison, still has callfleet/cli.py).
        self.entry = "cli" if (self.repo / "cli" / "__main__.py").exists() else "callfleet.cli"
        self.tmp = Path(tempfile.mkdtemp(prefix="callfleet-bench-"))
        self.profiles = self.tmp / "profiles.toml"
        self.profiles.write_text(only_profile((profiles or self.repo / "configs" / "profiles.toml").resolve(), profile))
        self.sandbox_port = free_port()
        self.http_port = free_port()
        self.sessions = sessions
        self.merge_pages = merge_pages  # pool.merge_pages: written only when on (an older checkout lacks the key)
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.supervisor: subprocess.Popen[bytes] | None = None
        self.api = f"http://127.0.0.1:{self.http_port}"
        self.sandbox_api = f"http://127.0.0.1:{self.sandbox_port}/v1"
        self.run_dir = self.tmp / "run"
        self.control_path = self.run_dir / "control.sock"

    def config(self) -> str:
        n = self.sessions
        # A host whose Python the workers' user cannot read (a 0700 /root) benches with
        # CALLFLEET_BENCH_WORKER_USER="" (workers as the supervisor's user): per frame the
        # same, since a worker switches users once, at boot.
        user = os.environ.get(WORKER_USER_ENV)
        worker_user = "" if user is None else f'worker_user = "{user}"'
        return f"""
[supervisor]
http_port = {self.http_port}
run_dir = "{self.run_dir}"
profiles = "{self.profiles}"

[pool]
min_idle = {n}
max_workers = {n + 2}
sessions_per_worker = 1
ping_interval_s = 1.0
ping_timeout_s = 10.0
start_timeout_s = 60.0
{worker_user}
{"merge_pages = true" if self.merge_pages else ""}

[daily]
mode = "sandbox"
requests_per_second = 1000
room_pool = {n}

[sessions]
idle_timeout_s = 600
join_timeout_s = 30

[sandbox]
port = {self.sandbox_port}
start = false
"""

    def start(self, supervisor: bool = True) -> None:
        """Start the sandbox and (unless ``supervisor`` is False: a peer-only run) the
        supervisor, and wait until it listens; raises ``RuntimeError`` if it exits."""
        # cwd and PYTHONPATH put the chosen checkout ahead of the installed (editable) one.
        env = {**os.environ, "CALLFLEET_LOG_LEVEL": "warning", "PYTHONPATH": str(self.repo)}
        self.sandbox = subprocess.Popen(
            [sys.executable, "-m", self.entry, "sandbox", "--port", str(self.sandbox_port), "--no-rate-limits",
             "--data-dir", str(self.tmp / "sandbox")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=self.repo)
        assert self.sandbox.stdout is not None
        self.sandbox.stdout.readline()
        if not supervisor:
            return
        config = self.tmp / "bench.toml"
        config.write_text(self.config())
        with open(self.tmp / "supervisor.log", "w") as log:
            self.supervisor = subprocess.Popen(
                [sys.executable, "-m", self.entry, "supervisor", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=log, env=env, cwd=self.repo)
        assert self.supervisor.stdout is not None
        line = self.supervisor.stdout.readline().decode()
        if "HTTP API" not in line:
            raise RuntimeError(f"the supervisor did not start:\n{(self.tmp / 'supervisor.log').read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in (self.supervisor, self.sandbox):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def only_profile(path: Path, name: str) -> str:
    """A profiles file holding profile ``name`` of ``path`` alone (``KeyError`` if it has
    none such)."""
    with open(path, "rb") as f:
        table = tomllib.load(f).get("profiles", {})[name]
    return f"[profiles.{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in table.items())


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's too; a table
    is written inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)
