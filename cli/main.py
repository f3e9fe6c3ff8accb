"""``callfleet``: one command, subcommands dispatched lazily to the part that owns them.

Nothing is imported until a subcommand is chosen, so ``callfleet ctl`` stays quick and the
worker/supervisor/sandbox separation holds (this module knows their entry points only).
"""

from __future__ import annotations

import importlib
import os
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


# What a shell reports for a writer killed by SIGPIPE (128 + 13): Python ignores the signal and
# raises BrokenPipeError instead, so a closed stdout is answered with the status it would have had.
CLOSED_STDOUT = 141


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand named by ``argv[0]`` (default: the process's arguments) and return
    its exit status: 2 for no, an unknown or an unavailable subcommand; 141, quietly, when
    whoever read stdout went away (``callfleet ctl sessions | head -3``)."""
    try:
        status = _run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # what is still buffered meets a closed pipe here, not at exit
    except BrokenPipeError:
        # Python's own recipe: stdout points at devnull, so the flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_STDOUT
    return status


def _run(args: list[str]) -> int:
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
