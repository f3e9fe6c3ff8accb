"""The embedded sandbox (``[daily] mode = "sandbox"``, ``[sandbox] start = true``): a child
process the daemon owns.

It is started before the daemon takes work and waited for until it answers. If it dies,
the daemon knows at once (the child's pidfd becomes readable on the loop): it says so in
health, logs and counts the restart, tells the daemon the rooms the sandbox held are gone,
and starts it again with back-off until it answers.

With ``[dialin] hmac_secret_env`` set, the child signs its dial-in webhooks as Daily does
with that secret (Daily's domain-level pinless ``hmac``). The supervisor's own environment
no longer holds the operator's variables, so the secret is handed over explicitly: in the
child's environment under ``HMAC_SECRET_ENV``, named by ``--dialin-hmac-secret-env``, never
on its command line (which ``ps`` shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import structlog

from callfleet.backoff import Backoff
from callfleet.procfs import set_parent_death_signal

log = structlog.get_logger("supervisor.sandbox")

START_TIMEOUT_S = 20.0
RESTART_BACKOFF = Backoff(base_s=0.25, max_s=10.0)
HMAC_SECRET_ENV = "CALLFLEET_SANDBOX_DIALIN_HMAC_SECRET"
# What status and /healthz say of a sandbox this daemon uses but did not start ([sandbox] start = false).
EXTERNAL = "external"


class SandboxStartError(Exception):
    """The sandbox did not start or did not answer in time."""


class SandboxChild:
    def __init__(self, host: str, port: int, data_dir: Path, on_lost: Callable[[], None], *,
                 dialin_hmac_secret: str = "") -> None:
        self.host, self.port, self.data_dir = host, port, data_dir
        self._dialin_hmac_secret = dialin_hmac_secret  # base64, as Daily's pinless `hmac`; "" signs nothing
        self.on_lost = on_lost
        self.proc: subprocess.Popen[bytes] | None = None
        self.up = False
        self.restarts = 0
        self.last_exit: str | None = None
        self._watch: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self._pidfd: int | None = None
        self._stopping = False

    @property
    def state(self) -> str:
        return "up" if self.up else "down"

    async def start(self) -> None:
        """Start the child and wait until it answers. Raises ``SandboxStartError``."""
        await self._launch()
        self._watch = asyncio.get_running_loop().create_task(self._supervise())

    async def _launch(self) -> None:
        argv = [sys.executable, "-m", "cli", "sandbox", "--host", self.host, "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        env = None  # inherit the supervisor's own (allowlisted) environment
        if self._dialin_hmac_secret:
            argv += ["--dialin-hmac-secret-env", HMAC_SECRET_ENV]
            env = {**os.environ, HMAC_SECRET_ENV: self._dialin_hmac_secret}
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            start_new_session=True,  # a terminal's Ctrl-C is the daemon's to handle
        )
        self._exited.clear()
        self._pidfd = os.pidfd_open(self.proc.pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)
        await self._wait_answering()
        self.up = True

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.up = False
        self._exited.set()

    async def _wait_answering(self) -> None:
        try:
            await wait_answering(self.host, self.port, self._exited)
        except SandboxStartError:
            if self._exited.is_set() and self.proc is not None:
                raise SandboxStartError(f"the sandbox exited with {self.proc.wait()} "
                                        f"(is port {self.port} taken?)") from None
            raise

    async def _supervise(self) -> None:
        while not self._stopping:
            await self._exited.wait()
            if self._stopping:
                return
            code = self.proc.wait() if self.proc is not None else None
            self.last_exit = _describe(code)
            self.on_lost()
            log.error("the sandbox died; restarting it", exit=self.last_exit, restarts=self.restarts)
            attempt = 0
            while not self._stopping:
                await asyncio.sleep(RESTART_BACKOFF.delay(attempt))
                attempt += 1
                try:
                    await self._launch()
                except (SandboxStartError, OSError) as exc:
                    log.error("the sandbox did not come back", error=str(exc), attempt=attempt)
                    self._kill()
                    continue
                self.restarts += 1
                log.warning("the sandbox is back", restarts=self.restarts, pid=self.proc.pid if self.proc else None)
                break

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
        if self._pidfd is not None:
            self._on_exit()

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.wait_for(self._exited.wait(), timeout_s)
            except TimeoutError:
                proc.kill()
            await asyncio.to_thread(proc.wait)
        if self._pidfd is not None:
            self._on_exit()
        self.up = False

    def kill_now(self) -> None:
        """Last resort when the daemon exits abnormally."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


async def wait_answering(host: str, port: int, gone: asyncio.Event | None = None) -> None:
    """Wait until the sandbox at ``host:port`` answers. Raises ``SandboxStartError`` after
    ``START_TIMEOUT_S`` or as soon as ``gone`` is set (the child exited)."""
    url = f"http://{host}:{port}/v1/sandbox/stats"
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if gone is not None and gone.is_set():
                raise SandboxStartError(f"the sandbox at {host}:{port} exited")
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.1)
    raise SandboxStartError(f"the sandbox at {host}:{port} did not answer within {START_TIMEOUT_S:g}s")


def _describe(code: int | None) -> str:
    if code is None:
        return "unknown"
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


def _die_with_parent() -> None:
    # The sandbox child must not outlive a SIGKILLed supervisor.
    set_parent_death_signal(signal.SIGTERM)
