"""What the operator reads: SIGHUP with a broken config is one clean 'reload refused' line
and the daemon goes on; every line the daemon writes (aiohttp's and asyncio's included) is
structlog's JSON when stderr is not a terminal."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SandboxProcess
from tests.supervisor_harness import SupervisorProcess
from tests.waiting import wait_until

ONE_SANDBOX = True  # conftest's sandbox_proc: each test has its own supervisor and none looks at the sandbox


async def wait_log(sup: SupervisorProcess, *needles: str, timeout: float = 10) -> str:
    """The log once it contains any of ``needles``."""
    return await wait_until(sup.log_path.read_text, timeout, f"any of {needles} logged",
                            until=lambda text: any(n in text for n in needles))


def ctl_by_socket(sup: SupervisorProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``callfleet ctl`` on the control socket: the config file on disk may be broken."""
    return subprocess.run([sys.executable, "-m", "cli", "ctl", "--socket", str(sup.run_dir / "control.sock"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=30)


async def test_sighup_with_a_broken_config_logs_one_reload_refused_line_and_keeps_running(
        tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()
    try:
        sup.config["pool"]["max_workers"] = 0
        sup.write_config()
        sup.signal(signal.SIGHUP)
        await wait_log(sup, "reload refused", "Traceback")
        status = ctl_by_socket(sup, "--json", "status")  # the daemon still answers, on its old config
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pool"]["max_workers"] == 4
        assert ctl_by_socket(sup, "status").returncode == 0
        log = sup.log_path.read_text()
        assert "Traceback" not in log, "a traceback escaped the SIGHUP callback:\n" + log[max(0, log.find("Traceback") - 300):]
        refused = [line for line in log.splitlines() if "reload refused" in line]
        assert len(refused) == 1, refused
        assert "pool.max_workers" in json.loads(refused[0])["error"], refused[0]
        assert sup.proc is not None and sup.proc.poll() is None
    finally:
        sup.stop()


async def test_aiohttp_errors_are_logged_as_structlog_json(tmp_path: Path, sandbox_proc: SandboxProcess) -> None:
    sup = SupervisorProcess(tmp_path, sandbox_proc.port)
    sup.start()
    try:
        # A request line aiohttp accepts, then a header it cannot parse: aiohttp.server logs
        # "Error handling request" with its traceback through the stdlib.
        with socket.create_connection(("127.0.0.1", sup.http_port), timeout=5) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
            assert raw.recv(4096).split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
        await wait_log(sup, "Error handling request")
        status = sup.ctl("status")
        assert status.returncode == 0, status.stderr
        lines = [line for line in sup.log_path.read_text().splitlines() if line.strip()]
        not_json = []
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                not_json.append(line)
                continue
            if not isinstance(event, dict):
                not_json.append(line)
            else:
                events.append(event)
        assert not_json == [], "lines that are not JSON:\n" + "\n".join(not_json[:20])
        errors = [e for e in events if "Error handling request" in e["event"]]
        assert len(errors) == 1, errors
        assert errors[0]["logger"] == "aiohttp.server" and errors[0]["level"] == "error"
        assert "BadHttpMessage" in errors[0]["exception"] or "InvalidHeader" in errors[0]["exception"], errors[0]
    finally:
        sup.stop()
