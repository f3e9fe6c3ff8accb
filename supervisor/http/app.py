"""The app factory and the server that runs it inside the daemon's loop."""

from __future__ import annotations

from aiohttp import web

from supervisor.http import dialin_signature, middlewares, node_auth, phone, twilio_signature, views
from supervisor.http.keys import DAEMON, HttpDaemon

MAX_BODY = 1024 * 1024


def make_app(daemon: HttpDaemon) -> web.Application:
    """The HTTP API over ``daemon``: its routes, middlewares and keys."""
    app = web.Application(client_max_size=MAX_BODY,
                          # A request another node forwarded proves it before anything else runs; a
                          # signed dial-in or Twilio webhook, before the bearer check, which then lets it through.
                          middlewares=[middlewares.bind_request, middlewares.daily_errors, node_auth.verify_nodes,
                                       dialin_signature.verify_webhook(daemon, views.dialin),
                                       twilio_signature.verify_webhook(daemon, phone.twilio_webhook),
                                       middlewares.bearer_auth])
    app[DAEMON] = daemon
    app[node_auth.NODE_AUTH] = node_auth.for_daemon(daemon)
    env = daemon.config.supervisor.api_key_env
    app[middlewares.API_KEY] = daemon.environ.get(env, "") if env else ""
    views.setup_routes(app)
    return app


class HttpServer:
    """The app, served on ``[supervisor] http_host:http_port`` inside the daemon's loop."""

    def __init__(self, daemon: HttpDaemon) -> None:
        self.daemon = daemon
        self.runner = web.AppRunner(make_app(daemon), access_log=None, handle_signals=False)
        self.url = ""

    async def start(self) -> None:
        cfg = self.daemon.config.supervisor
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.http_host, cfg.http_port, reuse_address=True)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
