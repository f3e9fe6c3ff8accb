"""A control command: how it is built from argv, run in the daemon, and printed."""

from __future__ import annotations

import abc
import argparse
from collections.abc import Mapping
from typing import Any, Protocol

from supervisor.session_logs import SessionLogs
from supervisor.sessions.state import SessionState


class CommandError(Exception):
    """The command could not be carried out; the message is shown to the operator."""


class SessionDirectory(Protocol):
    """What the commands read of the daemon's session registry."""

    @property
    def live(self) -> Mapping[str, object]: ...

    def list(self, state: SessionState | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def describe(self, session_id: str) -> dict[str, Any] | None: ...


class DaemonControl(Protocol):
    """What the commands need from the daemon, typed here so that no command imports it
    (the daemon imports the commands, through the control socket)."""

    @property
    def registry(self) -> SessionDirectory: ...

    @property
    def events_endpoint(self) -> str: ...

    @property
    def session_logs(self) -> SessionLogs: ...

    def request_drain(self) -> None: ...

    async def reload(self) -> dict[str, Any]: ...

    def scale(self, min_idle: int | None, max_workers: int | None) -> dict[str, Any]: ...

    async def stop_session(self, session_id: str) -> bool: ...

    async def list_sessions(self, state: SessionState | None, limit: int) -> list[dict[str, Any]]: ...

    def status(self) -> dict[str, Any]: ...

    def workers(self) -> list[dict[str, Any]]: ...


class ControlCommand(abc.ABC):
    name = ""
    help = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - a default, not abstract
        """Declare the command's arguments (none by default)."""

    def build(self, ns: argparse.Namespace) -> dict[str, Any]:
        """The arguments sent over the socket, from parsed argv."""
        return {}

    @abc.abstractmethod
    async def execute(self, daemon: DaemonControl, args: dict[str, Any]) -> Any:
        """Carry the command out in the daemon; raise ``CommandError`` to refuse."""

    def render(self, result: Any) -> str:
        """Human output (a table); ``--json`` prints the raw result instead."""
        return str(result)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width table; empty -> "(none)"."""
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def require_str(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"{key} is required")
    return value
