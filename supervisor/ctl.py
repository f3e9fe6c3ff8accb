"""``callfleet ctl``: the control socket's client, built from the same command registry.

Exit codes: 0 ok, 1 the command failed (message on stderr), 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import zmq

from supervisor.commands import REGISTRY
from supervisor.commands.logs import print_log
from supervisor.config import ConfigError, load

TIMEOUT_MS = 10_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"callfleet ctl: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callfleet ctl", description="Inspect and steer a running callfleet supervisor.")
    parser.add_argument("--config", default="configs/sandbox.toml", help="the daemon's config (to find its run_dir)")
    parser.add_argument("--socket", default=None, help="control socket path (default: RUN_DIR/control.sock)")
    parser.add_argument("--json", action="store_true", help="print the raw reply")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in REGISTRY.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def _control_path(ns: argparse.Namespace) -> Path:
    if ns.socket:
        return Path(ns.socket)
    return load(ns.config).run_dir / "control.sock"


def request(path: Path, command: str, args: dict[str, Any], timeout_ms: int = TIMEOUT_MS) -> dict[str, Any]:
    """One request/reply on the control socket; raises ConnectionError when nobody answers."""
    if not path.exists():
        raise ConnectionError(f"no control socket at {path} (is the supervisor running?)")
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{path}")
    try:
        sock.send(msgspec.json.encode({"command": command, "args": args}))
        if not sock.poll(timeout_ms):
            raise ConnectionError(f"the supervisor did not answer within {timeout_ms / 1000:g}s")
        return dict(msgspec.json.decode(sock.recv()))
    finally:
        sock.close(0)


def follow_events(endpoint: str, as_json: bool) -> int:
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    render = REGISTRY["events"].render
    try:
        while True:
            kind, data = sub.recv_multipart()
            event = msgspec.json.decode(data)
            if as_json:
                print(json.dumps({"kind": kind.decode(), **event}), flush=True)
            else:
                print(render((kind.decode(), event)), flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        sub.close(0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not ns.command:
        parser.print_usage(sys.stderr)
        print("callfleet ctl: a COMMAND is required", file=sys.stderr)
        return 2
    command = REGISTRY[ns.command]
    try:
        path = _control_path(ns)
    except ConfigError as exc:
        print(f"callfleet ctl: {exc}", file=sys.stderr)
        return 2
    try:
        reply = request(path, ns.command, command.build(ns))
    except ConnectionError as exc:
        print(f"callfleet ctl: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"callfleet ctl {ns.command}: {reply.get('error')}", file=sys.stderr)
        return 1
    result = reply.get("result")
    if ns.command == "events":
        return follow_events(result["endpoint"], ns.json)
    if ns.command == "logs" and not ns.json:
        return print_log(result, command.build(ns), ns.follow, lambda args: request(path, "logs", args))
    print(json.dumps(result, indent=2) if ns.json else command.render(result))
    return 0
