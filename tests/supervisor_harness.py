"""Start a real ``callfleet supervisor`` process on a temporary run_dir and free ports."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from callfleet.procfs import alive, descendants
from tests.conftest import REPO, free_port
from tests.waiting import wait_until

__all__ = ["SupervisorProcess", "alive", "descendants"]

BASE = {
    # Without Pipecat profiles: a supervisor that needs none starts without importing Pipecat.
    # Tests of hosted bots pass their own profiles; tests of the shipped ones name configs/.
    "supervisor": {"drain_timeout_s": 15, "profiles": str(REPO / "tests" / "data" / "profiles.toml")},
    "pool": {"min_idle": 1, "max_workers": 4, "sessions_per_worker": 1, "ping_interval_s": 0.5,
             "ping_timeout_s": 2.5, "start_timeout_s": 15, "shutdown_timeout_s": 5},
    "daily": {"mode": "sandbox", "requests_per_second": 50},
    "sessions": {"idle_timeout_s": 30, "join_timeout_s": 15, "failover": False},
}


def toml(config: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, str):
                rendered = f'"{value}"'
            else:
                rendered = str(value)
            lines.append(f"{key} = {rendered}")
        lines.append("")
    return "\n".join(lines)


class SupervisorProcess:
    def __init__(self, tmp: Path, sandbox_port: int | None, *, env: dict[str, str] | None = None,
                 user: int | None = None, **overrides: dict[str, Any]) -> None:
        self.env = env  # added to this process's environment for the supervisor
        self.user = user  # run the supervisor as this uid (and its group), not as the tests' user
        self.tmp = tmp
        self.run_dir = tmp / "run"
        self.http_port = free_port()
        config = {k: dict(v) for k, v in BASE.items()}
        config["supervisor"].update(http_port=self.http_port, run_dir=str(self.run_dir))
        if sandbox_port is None:
            config["sandbox"] = {"port": free_port(), "start": True}
        else:
            config["sandbox"] = {"port": sandbox_port, "start": False}
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
        self.config = config
        self.config_path = tmp / "callfleet.toml"
        self.write_config()
        self.proc: subprocess.Popen[str] | None = None
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = tmp / "supervisor.log"

    def write_config(self) -> None:
        self.config_path.write_text(toml(self.config))

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "a")
        env = {**os.environ, **self.env} if self.env else None
        as_user: dict[str, Any] = {}
        if self.user is not None:
            import pwd

            entry = pwd.getpwuid(self.user)
            as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "supervisor", "--config", str(self.config_path)],
                                     cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, env=env, **as_user)
        assert self.proc.stdout is not None
        # The first line says where it listens; wait for it ``timeout`` at most, not forever
        # (a supervisor that hangs at start-up would otherwise hold the test until pytest's limit).
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not ready:
            self.proc.kill()
            self.proc.wait()
        assert "HTTP API" in line, (f"supervisor did not start within {timeout:g} s: {line!r}\n"
                                    f"{self.log_path.read_text()[-3000:]}")

    def stored(self, session_id: str) -> Any:
        """The session's record as the supervisor wrote it to its store (None if absent)."""
        from supervisor.store import Store

        store = Store(self.run_dir / "sessions.db")
        try:
            return store.get(session_id)
        finally:
            store.close()

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", "ctl", "--config", str(self.config_path), *args],
                              cwd=REPO, capture_output=True, text=True, timeout=30)

    async def http(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        async with aiohttp.ClientSession() as s, s.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            try:
                import json

                body = json.loads(text)
            except ValueError:
                body = text
            return resp.status, body, resp.headers

    async def start_bot(self, profile: str = "echo", **extra: Any) -> dict[str, Any]:
        status, body, _ = await self.http("POST", "/bots/start", json={"bot_profile": profile, **extra})
        assert status == 200, (status, body)
        return dict(body)

    async def session(self, sid: str) -> dict[str, Any]:
        status, body, _ = await self.http("GET", f"/sessions/{sid}")
        assert status == 200, (status, body)
        return dict(body)

    async def wait_session(self, sid: str, predicate: Any, timeout: float = 20, what: str = "session state") -> dict[str, Any]:
        """The session's detail once ``predicate`` holds for it; ``AssertionError`` after ``timeout`` s."""
        return await wait_until(lambda: self.session(sid), timeout, what, until=predicate, interval=0.1)

    async def workers(self, predicate: Any = None, timeout: float = 20) -> list[dict[str, Any]]:
        """``ctl workers``, once ``predicate`` holds for it (at once without one)."""
        def listed() -> list[dict[str, Any]]:
            result = self.ctl("--json", "workers")
            assert result.returncode == 0, result.stderr
            return list(json.loads(result.stdout))

        return await wait_until(listed, timeout, "workers", until=predicate or (lambda _: True), interval=0.2)

    def event_followers(self) -> int:
        """How many sockets are connected to the event feed (``events.sock``) now.

        A PUB socket says nothing of its subscribers, but the kernel lists every connection
        to a unix socket with the socket's path: once a follower is connected, its
        subscription is the first thing it sends, ahead of any event a test then causes.
        """
        path = str(self.run_dir / "events.sock")
        with open("/proc/net/unix") as table:
            rows = [line.split() for line in table]
        return sum(1 for row in rows if len(row) == 8 and row[7] == path and row[5] == "03")  # 03: connected

    async def followed(self, followers: int = 1) -> None:
        """Wait until ``followers`` sockets follow the event feed."""
        await wait_until(self.event_followers, 20, f"{followers} follower(s) of the event feed",
                         until=lambda n: n >= followers)

    def descendants(self) -> list[int]:
        """Every live process below the supervisor (workers, forkserver, sandbox)."""
        assert self.proc is not None
        return descendants(self.proc.pid)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Stop now: SIGTERM drains (live sessions go on), a second SIGTERM ends them."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
