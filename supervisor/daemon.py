"""``callfleet supervisor``: the daemon. One asyncio loop (uvloop) runs everything.

Signals only enqueue (gunicorn's rule): SIGTERM/SIGINT drain and stop -- a second one stops
at once -- and SIGHUP reloads. Before taking work the daemon runs its start-up checks and
starts what it depends on (``supervisor.startup``: the sandbox in sandbox mode, its cluster
membership in cluster mode), and reconciles sessions a crashed predecessor left unfinished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from callfleet import logs, scrub
from supervisor import config as config_mod
from supervisor import isolation, operator_secrets, sandbox_child, startup
from supervisor import profiles as profiles_mod
from supervisor.bot_check import check_bots_async
from supervisor.cluster import Cluster, LeaseState
from supervisor.commands import REGISTRY
from supervisor.commands.base import CommandError
from supervisor.config import Config, ConfigError
from supervisor.control import ControlServer
from supervisor.daemon_state import DaemonState
from supervisor.daily_rest import DailyREST
from supervisor.environment import OperatorEnvironment, bot_env, check_secrets, take_over
from supervisor.http.forward import list_sessions
from supervisor.loop_probe import LoopProbe
from supervisor.metrics import Metrics
from supervisor.pool import Pool
from supervisor.rooms.ledger import delete_leftover_rooms
from supervisor.rooms.pool import RoomPool
from supervisor.sandbox_child import SandboxChild
from supervisor.session_logs import SessionLogs
from supervisor.sessions.recovery import reconcile_store
from supervisor.sessions.registry import Registry
from supervisor.sessions.resources import ResourceSampler
from supervisor.sessions.services import Services
from supervisor.sessions.state import EndReason, SessionState
from supervisor.sessions.view import describe_record
from supervisor.store import Store
from supervisor.webhooks import WebhookSender, sender_for

log = structlog.get_logger("supervisor")

STOP_NOW_S = 2.0  # after the drain (or a second signal): how long sessions get to leave and clean up
STOP_MARGIN_S = 2.0  # past the cleanup deadline, for workers to exit

# A running node's state while it does not hold its cluster lease: it takes no sessions.
WITHOUT_LEASE = {LeaseState.JOINING: DaemonState.JOINING, LeaseState.LAPSED: DaemonState.LAPSED,
                 LeaseState.FENCED: DaemonState.FENCED}


class Daemon:
    """The supervisor: its parts, its state, and its signals and control commands."""

    def __init__(self, config: Config, config_path: Path | None = None,
                 environ: OperatorEnvironment | None = None) -> None:
        self.config = config
        # The operator's variables: read from here, never from os.environ (see environment.py).
        self.environ = environ if environ is not None else OperatorEnvironment(os.environ)
        self.config_path = config_path
        self.run_dir = config.run_dir
        self.started_at = time.monotonic()
        self._state = DaemonState.STARTING
        self.profiles = profiles_mod.load(config.supervisor.profiles)
        # Scrubbed from every log line, error and record from here on.
        self._secrets = operator_secrets.register(config, self.profiles.profiles.values(), self.environ)
        self._stop_now = asyncio.Event()
        self._drain_requested = asyncio.Event()
        self.sandbox: SandboxChild | None = None
        self._stop_by: float | None = None  # monotonic: when the drain times out
        self._reloads: set[asyncio.Task[None]] = set()
        self.http_url = ""
        self.metrics = Metrics()
        self.loop_probe = LoopProbe()
        self.cluster: Cluster | None = None  # set in cluster mode ([cluster] redis_url)
        self.isolation = isolation.Isolation(None)  # decided at start-up (startup.isolate)
        self.webhooks: WebhookSender | None = None  # with [webhooks] url

    @property
    def state(self) -> DaemonState:
        """Where the daemon is in its life; in cluster mode a running node that does not
        hold its lease is joining, lapsed or fenced: it takes no sessions and /readyz is 503."""
        if self._state is DaemonState.RUNNING and self.cluster is not None:
            return WITHOUT_LEASE.get(self.cluster.lease_state(), self._state)
        return self._state

    # -- what its parts call back ------------------------------------------------------------

    def _publish_records(self, session_ids: list[str]) -> None:
        """Cluster mode: the directory learns how reconciled sessions ended."""
        if self.cluster is None:
            return
        for sid in session_ids:
            record = self.store.get(sid)
            if record is not None:
                self.cluster.publish_session(describe_record(record))

    async def _end_sessions_fenced(self, why: str) -> None:
        """Cluster fencing: every session ends ``node_lost`` and its bot leaves the call; the
        pooled rooms leave the pool. No room is deleted here: the cluster settles them once
        (a survivor may be deleting them now)."""
        self.room_pool.forget_all()
        await self.registry.fence(f"this node was fenced: {why}", time.monotonic() + STOP_NOW_S)

    def _sandbox_lost(self) -> None:
        """The embedded sandbox died and took its rooms with it."""
        room_pool = getattr(self, "room_pool", None)
        dropped = room_pool.forget_all() if room_pool is not None else 0
        log.error("the embedded sandbox is down; pooled rooms dropped", pooled_rooms=dropped)

    def _start_webhooks(self, reconciled: list[str]) -> None:
        """Start the webhook sender (claiming each event in the cluster's Redis when there is
        one). Besides the session actors, two places end sessions: the start-up reconcile
        (sessions a crashed predecessor left unfinished) and, in a cluster, this node's
        clean-up of a lost node."""
        if self.webhooks is None:
            return
        if self.cluster is not None:
            self.webhooks.claim = self.cluster.claim_once
            # A lost node's sessions end here, as this node marks them node_lost.
            self.cluster.lease.on_session_lost = self.webhooks.session_ended
        self.webhooks.start()
        for sid in reconciled:
            record = self.store.get(sid)
            if record is not None:
                self.webhooks.session_ended(describe_record(record))

    def _bot_env(self, profile_name: str) -> dict[str, str]:
        """A hosted bot's environment for its session (its profile's secrets and env)."""
        profile = self.profiles.get(profile_name)
        return bot_env(self.environ, profile) if profile is not None else {}

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> int:
        """Check, start everything, take work until told to stop, then stop it all; 0 when
        stopped cleanly. Raises ``StartupError`` or ``ConfigError`` when it cannot start."""
        from supervisor.http.app import HttpServer

        self.loop_probe.start()  # from the first await: start-up stalls count as well
        cfg = self.config
        startup.check_keys(cfg, self.environ)
        try:
            self.webhooks = sender_for(cfg.webhooks, self.environ)
        except ValueError as exc:
            raise startup.StartupError(str(exc)) from None
        self.isolation = startup.isolate(cfg, self.profiles.profiles.values(), self.environ)
        startup.check_page_merging(cfg)
        startup.prepare_run_dir(self.run_dir)
        # Importing the pipecat bots takes a fresh process a second or so: beside the sandbox's start.
        bots_checked = asyncio.ensure_future(check_bots_async(self.profiles.pipecat_bots(), self.config.backend,
                                                              self.isolation.user))
        try:
            self.sandbox = startup.sandbox_child(cfg, self.environ, self.run_dir, self._sandbox_lost)
            await startup.sandbox_answering(cfg, self.sandbox)
        finally:
            await bots_checked  # a ConfigError here is exit 2, naming the profile
        self.http_session = aiohttp.ClientSession()
        self.rest = DailyREST(startup.daily_api_key(cfg, self.environ), self.http_session, api_url=cfg.daily_api_url,
                              requests_per_second=cfg.daily.requests_per_second,
                              timeout_s=cfg.daily.request_timeout_s, max_retries=cfg.daily.max_retries)
        self.store = Store(self.run_dir / "sessions.db")
        self.cluster = await startup.join_cluster(cfg, self.rest, self.store)
        fixed = await reconcile_store(self.store, self.rest)
        if fixed:
            log.warning("reconciled sessions left by a crashed supervisor", count=len(fixed))
            self._publish_records(fixed)
        self._start_webhooks(fixed)
        leftover = await delete_leftover_rooms(self.rest, self.store)
        if leftover:
            log.warning("deleted rooms a previous run left", count=leftover)
        # A pooled room must outlive at least the shortest session and its start.
        min_life = 60 + cfg.pool.start_timeout_s + cfg.sessions.join_timeout_s
        self.room_pool = RoomPool(self.rest, self.store, size=cfg.daily.room_pool, prefix=cfg.daily.room_prefix,
                                  room_exp_s=cfg.daily.room_exp_s, min_life_s=min_life)
        self.control = ControlServer(self, self.run_dir)
        self.events_endpoint = self.control.events_endpoint
        self.pool = Pool(cfg, startup.workers_endpoint(self.run_dir, self.isolation), publish=self.control.publish,
                         lanes=self.profiles.lanes(), pipecat_bots=list(self.profiles.pipecat_bots().values()),
                         worker_user=self.isolation.user)
        await self.pool.start()
        self.services = Services(cfg, self.pool, self.rest, self.store, self.control.publish, self.metrics,
                                 room_pool=self.room_pool)
        self.services.cluster = self.cluster
        self.services.bot_env = self._bot_env
        self.services.webhooks = self.webhooks
        if self.cluster is not None:
            self.cluster.capacity_probe = self.pool.capacity
        self.room_pool.start()
        self.registry = Registry(self.services)
        self.resources = ResourceSampler(lambda: list(self.registry.live.values()))  # each live session's CPU, PSS
        self.resources.start()
        # Each session's lines, its worker's and this daemon's, kept in sessions.db.
        self.session_logs = SessionLogs(self.store, cfg.logs, lambda sid: sid in self.registry.live)
        self.pool.router.on_log_lines = self.session_logs.from_worker
        logs.set_line_tap(self.session_logs.take)
        self.session_logs.start(lambda: set(self.registry.live))
        if self.cluster is not None:
            self.cluster.on_fenced(self._end_sessions_fenced, self.store.forget_room)
        self.metrics.bind(self)
        self.http = HttpServer(self)
        await self.http.start()
        self.http_url = self.http.url
        if self.cluster is not None and not cfg.cluster.advertise_url:
            self.cluster.advertise_url = startup.advertise_url(cfg, self.http_url)  # the port actually bound
        self.services.daily_proxy_url = f"{self.http_url}/daily/v1"
        self.control.start()
        self._install_signals()
        self._state = DaemonState.RUNNING
        # Everything imported and built for the daemon's life is out of the collector's way:
        # full collections, triggered by the audio path's short-lived allocations, then
        # scan only what came after (LiveKit and the forkserver's preload do the same).
        gc.collect()
        gc.freeze()
        log.info("supervisor running", http=self.http_url, control=self.control.endpoint,
                 daily_mode=cfg.daily.mode, min_idle=cfg.pool.min_idle, max_workers=cfg.pool.max_workers)
        print(f"callfleet supervisor: HTTP API {self.http_url}  control {self.control.control_path}", flush=True)
        try:
            await self._main()
        finally:
            await self._shutdown()
        return 0

    async def _main(self) -> None:
        drain = asyncio.ensure_future(self._drain_requested.wait())
        now = asyncio.ensure_future(self._stop_now.wait())
        await asyncio.wait({drain, now}, return_when=asyncio.FIRST_COMPLETED)
        drain.cancel()
        if self._stop_now.is_set():
            return
        # Draining: no new sessions (start endpoints and /readyz answer 503), live ones go on
        # until they end by themselves or the drain times out; _shutdown ends the rest.
        self._state = DaemonState.DRAINING
        self.pool.set_desired(draining=True)
        drain_s = self.config.supervisor.drain_timeout_s
        self._stop_by = time.monotonic() + drain_s
        log.info("draining: live sessions go on until they end or the drain times out",
                 sessions=len(self.registry.live), drain_timeout_s=drain_s)
        emptied = asyncio.ensure_future(self.registry.empty.wait())
        await asyncio.wait({emptied, now}, timeout=drain_s, return_when=asyncio.FIRST_COMPLETED)
        emptied.cancel()
        now.cancel()
        if self.registry.live:
            log.warning("drain over: ending the sessions still live", sessions=len(self.registry.live),
                        stop_now=self._stop_now.is_set())

    async def _shutdown(self) -> None:
        """Everything stops within ``STOP_NOW_S + STOP_MARGIN_S`` of the drain's end (its
        timeout, the last session ending, or a second signal): rooms that could not be
        deleted by then stay in the ledger, and the next start deletes them."""
        self._state = DaemonState.STOPPING
        # The drain (if any) is over: what is still live gets a short time to leave and clean up.
        deadline = time.monotonic() + STOP_NOW_S
        if self.registry.live:
            await self.registry.stop_all(EndReason.DRAINED, deadline)
        await self.http.stop()
        left = await self.room_pool.close(deadline)
        if left:
            log.warning("rooms left for the next start to delete", rooms=len(left))
        await self.pool.stop(min(time.monotonic() + self.config.pool.shutdown_timeout_s, deadline + STOP_MARGIN_S))
        if self.webhooks is not None:  # the sessions' last events get a short grace
            await self.webhooks.close()
        self.control.close()
        if self.cluster is not None:
            await self.cluster.stop()  # after the last session's record and room delete: they are published
        await self.http_session.close()
        logs.set_line_tap(None)
        await self.session_logs.stop()
        self.store.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        self.loop_probe.stop()
        log.info("supervisor stopped")

    # -- signals and commands ------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_terminate)
        loop.add_signal_handler(signal.SIGINT, self._on_terminate)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_terminate(self) -> None:
        if self._drain_requested.is_set():
            log.warning("second stop signal: stopping now")
            self._stop_now.set()
        else:
            self.request_drain()

    def _on_hup(self) -> None:
        self._reloads.add(task := asyncio.get_running_loop().create_task(self._reload_on_signal()))
        task.add_done_callback(self._reloads.discard)

    async def _reload_on_signal(self) -> None:
        # SIGHUP is the reload command: one path, which logs a refusal in one line (no traceback).
        with contextlib.suppress(CommandError):
            await REGISTRY["reload"].execute(self, {})

    def request_drain(self) -> None:
        """Stop taking sessions and stop once the live ones have ended (or the drain times out)."""
        self._drain_requested.set()

    async def reload(self) -> dict[str, Any]:
        """Re-read the config file; pool and session settings apply now, others on restart.

        Raises ``CommandError`` (via the command) / ``ConfigError`` for a bad file; the
        running config is then untouched."""
        if self.config_path is None:
            raise CommandError("the daemon was started without a config file")
        try:
            new = config_mod.load(self.config_path)
            profiles = profiles_mod.load(new.supervisor.profiles)
            check_secrets(self.environ, profiles.profiles.values())
            await check_bots_async(profiles.pipecat_bots(), new.backend, self.isolation.user)
        except ConfigError as exc:
            raise CommandError(f"config not reloaded: {exc}") from None
        await self.pool.reload_lanes(profiles.lanes(), list(profiles.pipecat_bots().values()))
        needs_restart = [name for name in ("supervisor", "daily", "audio", "sandbox", "cluster", "webhooks")
                         if getattr(new, name) != getattr(self.config, name)]
        self.config = new
        self.profiles = profiles
        scrub.forget(self._secrets)
        self._secrets = operator_secrets.register(new, profiles.profiles.values(), self.environ)
        self.pool.set_desired(config=new, min_idle=new.pool.min_idle, max_workers=new.pool.max_workers)
        self.services.config = new
        log.info("config reloaded", min_idle=new.pool.min_idle, max_workers=new.pool.max_workers,
                 needs_restart=needs_restart)
        return {"min_idle": new.pool.min_idle, "max_workers": new.pool.max_workers, "needs_restart": needs_restart}

    def scale(self, min_idle: int | None, max_workers: int | None) -> dict[str, Any]:
        """Change the pool's ``min_idle`` and ``max_workers`` until the next reload; raises
        ``CommandError`` when ``min_idle`` would exceed ``max_workers``."""
        try:
            desired = self.pool.set_desired(min_idle=min_idle, max_workers=max_workers)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return {"min_idle": desired.min_idle, "max_workers": desired.max_workers}

    async def list_sessions(self, state: SessionState | None, limit: int) -> list[dict[str, Any]]:
        """Sessions newest first, a cluster's included, as ``GET /sessions`` lists them."""
        return await list_sessions(self.registry, self.cluster, state, limit)

    async def stop_session(self, session_id: str) -> bool:
        """End a live session here (``stopped``); False when it is not live here."""
        session = self.registry.get(session_id)
        if session is None:
            return False
        session.stop(EndReason.STOPPED)
        return True

    # -- views -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The daemon at a glance (``ctl status``, ``/healthz``), as plain JSON values."""
        workers: dict[str, int] = {}
        for w in self.pool.workers.values():
            workers[w.state.value] = workers.get(w.state.value, 0) + 1
        sessions: dict[str, int] = {}
        for s in self.registry.live.values():
            sessions[s.record.state.value] = sessions.get(s.record.state.value, 0) + 1
        return {
            "state": self.state.value,
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - self.started_at,
            "http_url": self.http_url,
            "daily_mode": self.config.daily.mode,
            "daily_api_url": self.config.daily_api_url,
            "workers_endpoint": self.pool.endpoint,
            "worker_user": None if self.isolation.user is None else self.isolation.user.name,
            "pool": {"min_idle": self.pool.desired.min_idle, "max_workers": self.pool.desired.max_workers,
                     "capacity": self.pool.capacity(), "restarts": self.pool.restarts,
                     "idle": self.pool.idle(), "warm": self.pool.warm,
                     "lanes": {lane: {"idle": self.pool.idle(lane), "min_idle": target}
                               for lane, target in self.pool.desired.idle_targets().items()}},
            "room_pool": {"size": self.room_pool.size, "ready": len(self.room_pool.ready), "taken": self.room_pool.taken,
                          "too_short": self.room_pool.too_short},
            "sandbox": self._sandbox_view(),
            "workers": workers,
            "sessions": sessions,
            "bad_frames": self.pool.bad_frames.total,
            "loop_stall_ms_max": self.loop_probe.max_ms,  # since start; per second below
            "loop_stall_ms_recent": self.loop_probe.recent_ms(),
            "loop_busy_ms_max": self.loop_probe.busy_max_ms,  # of the stall, the loop's own work
            "loop_busy_ms_recent": self.loop_probe.recent_busy_ms(),
        }

    def _sandbox_view(self) -> dict[str, Any] | str | None:
        """The embedded sandbox's state; ``"external"`` for one this daemon uses but did not
        start (``[sandbox] start = false``); None in cloud mode, where there is no sandbox."""
        if self.sandbox is not None:
            return {"state": self.sandbox.state, "restarts": self.sandbox.restarts, "last_exit": self.sandbox.last_exit}
        return sandbox_child.EXTERNAL if self.config.daily.mode == "sandbox" else None

    def workers(self) -> list[dict[str, Any]]:
        """Every worker process as ``ctl workers`` shows it."""
        now = time.monotonic()
        return [w.describe(now) for w in self.pool.workers.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callfleet supervisor", description="Run the callfleet daemon.")
    parser.add_argument("--config", default="configs/sandbox.toml")
    ns = parser.parse_args(argv)
    try:
        config = config_mod.load(ns.config)
        profiles_mod.load(config.supervisor.profiles)
    except ConfigError as exc:
        print(f"callfleet supervisor: {exc}", file=sys.stderr)
        return 2
    environ = take_over()  # from here on, whatever this process starts inherits only the allowlist
    logs.configure()
    import uvloop

    daemon: Daemon | None = None

    async def run() -> int:
        nonlocal daemon
        daemon = Daemon(config, Path(ns.config), environ)
        return await daemon.run()

    try:
        return uvloop.run(run())
    except ConfigError as exc:  # a pipecat profile's bot that does not import
        print(f"callfleet supervisor: {exc}", file=sys.stderr)
        return 2
    except startup.StartupError as exc:
        print(f"callfleet supervisor: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"callfleet supervisor: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            if daemon is not None and daemon.sandbox is not None:
                daemon.sandbox.kill_now()
