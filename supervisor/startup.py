"""What the daemon checks and starts before it takes work: the keys and secrets its
configuration names, the workers' user, its run directory, Daily's stand-in (sandbox mode)
and its membership of a cluster (cluster mode). Each check raises before anything is
started, so a daemon that cannot run says why and exits."""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import structlog

from callfleet.privileges import make_undumpable
from supervisor import config as config_mod
from supervisor import isolation
from supervisor.cluster import Cluster
from supervisor.config import Config, ConfigError
from supervisor.daily_rest import DailyREST
from supervisor.environment import OperatorEnvironment, check_secrets
from supervisor.http import node_auth
from supervisor.http.dialin_signature import secret_from
from supervisor.http.twilio_signature import auth_token_from
from supervisor.profiles import Profile
from supervisor.sandbox_child import SandboxChild, SandboxStartError, wait_answering
from supervisor.store import Store

log = structlog.get_logger("supervisor")

RUN_DIR_SOCKETS = ("workers.sock", "control.sock", "events.sock")
KSM_RUN = Path("/sys/kernel/mm/ksm/run")  # "1" while the kernel's page-merging thread runs


class StartupError(Exception):
    """The daemon cannot start (port taken, sandbox not answering, ...)."""


def check_keys(config: Config, environ: Mapping[str, str]) -> None:
    """The API key, the node secret, the dial-in secret and Twilio's auth token the
    configuration names are usable. Raises ``StartupError`` naming the config key."""
    env = config.supervisor.api_key_env
    if env and not environ.get(env) and not config.supervisor.http_host.startswith(config_mod.LOOPBACK):
        raise StartupError(f"supervisor.api_key_env: ${env} is not set, and http_host is not loopback")
    try:
        node_auth.node_secret(config.cluster, environ)
        secret_from(config.dialin, environ)
        auth_token_from(config.telephony, environ)
    except ValueError as exc:
        raise StartupError(str(exc)) from None


def daily_api_key(config: Config, environ: Mapping[str, str]) -> str:
    """The account's key ("sandbox" in sandbox mode without one). Bots never hold it: they
    get a per-session key for the supervisor's Daily proxy instead. Raises ``StartupError``
    in cloud mode without it."""
    key = environ.get(config.daily.api_key_env, "")
    if not key and config.daily.mode == "cloud":
        raise StartupError(f"daily.api_key_env: ${config.daily.api_key_env} is not set (cloud mode needs it)")
    return key or "sandbox"


def isolate(config: Config, profiles: Iterable[Profile], environ: OperatorEnvironment) -> isolation.Isolation:
    """Decide what the workers run as (``supervisor.isolation``); make this process
    non-dumpable and everything it creates private. Raises ``ConfigError``."""
    os.umask(0o077)  # sessions.db, the sockets, the sandbox's files: the supervisor's alone
    make_undumpable()
    plan = isolation.plan(config.pool.worker_user)
    if plan.user is not None:
        closed = isolation.unreachable(plan.user, [os.getcwd(), *sys.path])
        if closed:
            raise ConfigError(f"pool.worker_user: {plan.user.name!r} cannot import from {closed}: "
                              f"install Python and the bots where that user can read them, or choose another "
                              f"worker_user")
    check_secrets(environ, profiles)
    if plan.warning:
        log.warning("workers are not isolated from the supervisor", detail=plan.warning)
    else:
        assert plan.user is not None
        log.info("workers run as their own user", user=plan.user.name, uid=plan.user.uid)
    return plan


def prepare_run_dir(run_dir: Path) -> None:
    """The run directory exists, is the supervisor's alone, and holds no socket a crashed
    predecessor left."""
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    for name in RUN_DIR_SOCKETS:
        (run_dir / name).unlink(missing_ok=True)  # left by a crash; we own run_dir


def workers_endpoint(run_dir: Path, plan: isolation.Isolation) -> str:
    """Where workers connect. Workers of the supervisor's own user: ``run_dir/workers.sock``
    (0600). Workers of another user must not reach into ``run_dir`` at all, so theirs is
    an abstract socket (no file, no path to open up); whoever connects to it still has to
    present a worker's secret routing id (``WorkerHandle.identity``) to be heard."""
    if plan.user is not None:
        return f"ipc://@callfleet-workers-{secrets.token_hex(8)}"
    return f"ipc://{run_dir / 'workers.sock'}"


def sandbox_child(config: Config, environ: Mapping[str, str], run_dir: Path,
                  on_lost: Callable[[], None]) -> SandboxChild | None:
    """The sandbox to start as a child: in sandbox mode unless ``[sandbox] start = false``
    (then a running one is used), else None."""
    if config.daily.mode != "sandbox" or not config.sandbox.start:
        return None
    # It signs its dial-in webhooks as Daily does, with the secret /dialin checks.
    hmac_env = config.dialin.hmac_secret_env
    hmac_secret = environ.get(hmac_env, "") if hmac_env else ""
    return SandboxChild(config.sandbox.host, config.sandbox.port, run_dir / "sandbox", on_lost=on_lost,
                        dialin_hmac_secret=hmac_secret.strip())


async def sandbox_answering(config: Config, child: SandboxChild | None) -> None:
    """Sandbox mode: start ``child``, or wait for the running sandbox, until it answers.
    Raises ``StartupError`` when it does not."""
    if config.daily.mode != "sandbox":
        return
    try:
        if child is not None:
            await child.start()
        else:
            await wait_answering(config.sandbox.host, config.sandbox.port)
    except SandboxStartError as exc:
        raise StartupError(str(exc)) from None
    log.info("sandbox answering", api_url=config.daily_api_url)


def check_page_merging(config: Config, ksm_run: Path = KSM_RUN) -> None:
    """``pool.merge_pages`` marks the workers' memory mergeable, but only the host's ksmd
    merges it: say so at start-up when it is not running, rather than let the operator read
    unchanged PSS figures and wonder."""
    if not config.pool.merge_pages:
        return
    try:
        running = ksm_run.read_text().strip() == "1"
    except OSError as exc:
        log.warning("pool.merge_pages is on but this kernel has no page merging (KSM): nothing will be merged",
                    error=str(exc))
        return
    if not running:
        log.warning("pool.merge_pages is on but the host's KSM thread is stopped: nothing will be merged until "
                    f"the host's administrator writes 1 to {ksm_run}")


async def join_cluster(config: Config, rest: DailyREST, store: Store) -> Cluster | None:
    """Cluster mode: join before the first Daily call, so the reconcile's deletes already
    take the account's shared rate limit; None without ``[cluster] redis_url``."""
    cfg = config.cluster
    if not cfg.redis_url:
        return None
    pool = config.pool
    if pool.ping_timeout_s + pool.ping_interval_s >= cfg.lease_s:
        # Then a paused supervisor's workers may still be in their calls when a survivor declares
        # the node lost; only its fencing, once it runs again, makes them leave.
        log.warning("workers outlive a paused supervisor past its lease: keep pool.ping_timeout_s + "
                    "pool.ping_interval_s below cluster.lease_s", lease_s=cfg.lease_s,
                    ping_timeout_s=pool.ping_timeout_s, ping_interval_s=pool.ping_interval_s)
    node_id = cfg.node_id or socket.gethostname()
    cluster = Cluster(cfg.redis_url, node_id, cfg.advertise_url or advertise_url(config), cfg.lease_s,
                      rest=rest, ledger=store.owned_rooms)
    rest.shared_limit = cluster.rate_limit
    store.mirror = cluster
    await cluster.start()
    return cluster


def advertise_url(config: Config, bound_url: str | None = None) -> str:
    """How other nodes reach this HTTP API when ``[cluster] advertise_url`` is unset:
    ``http://<host IP>:<http_port>`` (the loopback address when the API listens there)."""
    host = config.supervisor.http_host
    if host in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    port = config.supervisor.http_port
    if bound_url:
        port = int(bound_url.rsplit(":", 1)[1])
    return f"http://{host}:{port}"
