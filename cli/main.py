"""``callfleet``: one command, subcommands dispatched lazily to the part that owns them.

Nothing is imported until a subcommand is chosen, so ``callfleet ctl`` stays quick and the
worker/supervisor/sandbox separation holds (this module knows their entry points only).
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, function, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "supervisor": ("supervisor.daemon", "main", "run the daemon (foreground)"),
    "ctl": ("supervisor.ctl", "main", "talk to a running daemon's control socket"),
    "sandbox": ("sandbox.server", "main", "run the local Daily stand-in on its own"),
    "caller": ("sandbox.caller", "main", "a synthetic human caller that joins a room"),
    "phone": ("sandbox.telephony.command", "main", "a Twilio-like phone that calls a voice webhook"),
    "bench": ("bench.main", "main", "measure start latency, added latency, CPU, memory"),
    "worker": ("worker.__main__", "main", "run one worker process (the pool does this)"),
}

USAGE = "usage: callfleet {" + ",".join(SUBCOMMANDS) + "} [ARGS]\n\n" + "\n".join(
    f"  {name:<11} {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()
)


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand named by ``argv[0]`` (default: the process's arguments) and return
    its exit status: 2 for no, an unknown or an unavailable subcommand."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"callfleet: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name, func_name, _ = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"callfleet {name}: not available yet in this build", file=sys.stderr)
            return 2
        raise
    func = getattr(module, func_name, None)
    if func is None:
        print(f"callfleet {name}: not available yet in this build", file=sys.stderr)
        return 2
    return int(func(rest) or 0)
