"""The control commands: one module each, one registry that both the control socket and
``callfleet ctl`` are built from."""

from supervisor.commands.base import CommandError, ControlCommand, DaemonControl
from supervisor.commands.drain import Drain
from supervisor.commands.events import Events
from supervisor.commands.logs import Logs
from supervisor.commands.reload import Reload
from supervisor.commands.scale import Scale
from supervisor.commands.sessions import Session, Sessions
from supervisor.commands.status import Status
from supervisor.commands.stop import Stop
from supervisor.commands.workers import Workers

REGISTRY: dict[str, ControlCommand] = {
    c.name: c for c in (Status(), Sessions(), Session(), Workers(), Stop(), Scale(), Reload(), Drain(), Events(),
                         Logs())
}

__all__ = ["REGISTRY", "CommandError", "ControlCommand", "DaemonControl"]
