"""``callfleet sandbox``: the Daily stand-in as a server (REST on HTTP, rooms on ZeroMQ).

``Sandbox`` runs it inside any asyncio loop (tests, the bench); ``main`` runs it alone.

Like a Daily domain whose pinless dial-in config has an ``hmac``, a sandbox given a dial-in
HMAC secret (``dialin_hmac_secret``, base64; ``--dialin-hmac-secret-env NAME`` names the
variable holding it) signs every dial-in webhook it posts (``POST /v1/sandbox/dialin``) with
Daily's ``X-Pinless-Timestamp`` and ``X-Pinless-Signature``. Without one it signs nothing,
as Daily does for a config without ``hmac``.

It also plays the phone network (``sandbox.telephony``): ``Sandbox.phones`` holds the calls
of its phones, and Twilio's REST API for them is served at the root, so ``twilio_api_url``
(the base URL itself) is what a Twilio client -- Pipecat's ``TwilioFrameSerializer(base_url=)``
-- is given instead of ``https://api.twilio.com``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from callfleet import logs
from sandbox import ai
from sandbox.limits import Faults, TokenBuckets
from sandbox.rest import keys, middlewares
from sandbox.rest.routes import setup_routes
from sandbox.rooms.server import RoomServer
from sandbox.store import Store
from sandbox.telephony import routes as telephony_routes
from sandbox.telephony.network import PhoneNetwork
from sandbox.tokens import TokenSigner

log = structlog.get_logger("sandbox")


class Sandbox:
    """The whole stand-in: ``await start()``, use ``base_url``/``api_url``, ``await stop()``.

    Two clocks, so that a test can move time instead of waiting for it: ``clock`` (monotonic)
    refills the rate limits; ``wall_clock`` (Unix time) is what rooms' and tokens' ``exp``
    and ``nbf``, token ejections and download links are judged on."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str = "",
                 rate_limits: bool = True, data_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 dialin_hmac_secret: bytes = b"") -> None:
        self.host, self.port = host, port
        self.dialin_hmac_secret = dialin_hmac_secret  # decoded; empty: webhooks go unsigned
        self.clock = clock
        self.wall_clock = wall_clock
        self.api_key = api_key
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="callfleet-sandbox-"))
        self.store = Store(clock=wall_clock)
        self.signer = TokenSigner(clock=wall_clock)
        self.faults = Faults(rate_limits=rate_limits)
        self.rooms: RoomServer | None = None
        self.ai: ai.StandIns | None = None
        self.phones = PhoneNetwork(clock=wall_clock)  # any Twilio auth token unless one is set
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def ai_url(self) -> str:
        """Where the stand-in AI services answer (``sandbox.ai``)."""
        return f"{self.base_url}/ai"

    @property
    def twilio_api_url(self) -> str:
        """Twilio's REST API for the sandbox's phones (``/2010-04-01/...`` under it)."""
        return self.base_url

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[middlewares.daily_errors, middlewares.auth_and_limits])
        assert self.rooms is not None
        app[keys.STORE] = self.store
        app[keys.ROOMS] = self.rooms
        app[keys.SIGNER] = self.signer
        app[keys.FAULTS] = self.faults
        app[keys.BUCKETS] = TokenBuckets(clock=self.clock)
        app[keys.API_KEY] = self.api_key
        app[keys.BASE_URL] = self.base_url
        app[keys.TASKS] = set()
        app[keys.DIALIN_HMAC_SECRET] = self.dialin_hmac_secret
        app.cleanup_ctx.append(self._http_client)
        setup_routes(app)
        self.ai = ai.setup(app, prefix="/ai")  # the stand-in AI services, beside Daily's
        telephony_routes.setup(app, self.phones)  # Twilio's REST API and the phone lines
        return app

    async def _http_client(self, app: web.Application) -> Any:
        async with aiohttp.ClientSession() as session:
            app[keys.HTTP] = session
            yield
            for task in list(app[keys.TASKS]):
                task.cancel()

    async def start(self) -> None:
        self.rooms = RoomServer(self.store, self.signer, recordings_dir=self.data_dir / "recordings", host=self.host)
        self.rooms.start()
        # Bind first so the app knows its own URL (port 0 picks a free one).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        app = self.make_app()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("sandbox listening", api_url=self.api_url, rooms=self.rooms.endpoint.address)

    async def stop(self) -> None:
        if self.rooms is not None:
            await self.rooms.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callfleet sandbox", description="Run the local Daily stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8990)
    parser.add_argument("--api-key-env", default=None,
                        help="name of an env var holding the only API key accepted (default: any key)")
    parser.add_argument("--no-rate-limits", action="store_true", help="switch Daily's rate limits off")
    parser.add_argument("--data-dir", type=Path, default=None, help="where recordings are written")
    parser.add_argument("--dialin-hmac-secret-env", default=None, metavar="NAME",
                        help="name of an env var holding the pinless dial-in HMAC secret (base64): "
                             "dial-in webhooks are then signed as Daily signs them")
    return parser.parse_args(argv)


def dialin_hmac_secret(name: str | None) -> bytes:
    """The decoded secret in ``$name`` (b"" without a name). Raises ``ValueError`` naming
    the option when the variable is unset or not base64."""
    if not name:
        return b""
    text = os.environ.get(name, "").strip()
    if not text:
        raise ValueError(f"--dialin-hmac-secret-env: ${name} is not set")
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"--dialin-hmac-secret-env: ${name} is not base64") from None
    if not secret:
        raise ValueError(f"--dialin-hmac-secret-env: ${name} decodes to nothing")
    return secret


async def serve(ns: argparse.Namespace, hmac_secret: bytes) -> None:
    api_key = os.environ.get(ns.api_key_env, "") if ns.api_key_env else ""
    sandbox = Sandbox(ns.host, ns.port, api_key=api_key, rate_limits=not ns.no_rate_limits, data_dir=ns.data_dir,
                      dialin_hmac_secret=hmac_secret)
    await sandbox.start()
    print(f"sandbox: REST {sandbox.api_url}  rooms {sandbox.base_url}/ROOM  twilio {sandbox.twilio_api_url}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    ns = parse(argv)
    try:
        hmac_secret = dialin_hmac_secret(ns.dialin_hmac_secret_env)
    except ValueError as exc:
        print(f"callfleet sandbox: {exc}", flush=True)
        return 2
    try:
        import uvloop

        uvloop.run(serve(ns, hmac_secret))
    except OSError as exc:
        print(f"callfleet sandbox: cannot listen on {ns.host}:{ns.port}: {exc}", flush=True)
        return 1
    return 0
