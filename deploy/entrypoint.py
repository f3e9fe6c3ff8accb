#!/usr/bin/env python3
"""The container's entry point: render the config template, then become the supervisor.

Kubernetes knows a pod's name and IP only when the pod starts, and the TOML config takes
no environment variables, so the ConfigMap holds a template: each ``${NAME}`` in it is
replaced by the environment variable NAME (the Deployment sets ``POD_NAME`` and ``POD_IP``
from the downward API) and the result is written to ``CALLFLEET_RENDERED_CONFIG``
(default ``/tmp/callfleet.toml``). The process then ``exec``s ``callfleet supervisor``, so
the supervisor keeps this process id and gets every signal tini forwards to it.

Started as root with ``CALLFLEET_SUPERVISOR_USER`` set (the image sets ``callfleet``), it
first re-executes itself as that user, keeping only the capabilities the supervisor needs
to run its workers as their own, third user (``[pool] worker_user``, the image's
``callfleet-bot``): ``CAP_SETUID`` and ``CAP_SETGID`` to switch the workers' forkserver to
it, ``CAP_KILL`` to stop them. The supervisor thus never runs as root, and a bot never runs
as the supervisor. The rendered config (it may hold a Redis password) is written 0600.

Usage: ``entrypoint.py [TEMPLATE]`` (default ``/etc/callfleet/callfleet.toml``). Exits 2,
as the supervisor does for a bad config, when the template cannot be read or names a
variable that is not set.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = "/etc/callfleet/callfleet.toml"
RENDERED = "/tmp/callfleet.toml"
# Only the braced form: a bare "$" stays as it is, so regexes and prices in the TOML are safe.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(Exception):
    """The template cannot be rendered; the message names the file and the variable."""


def render(template: str, env: Mapping[str, str], source: str = "<template>") -> str:
    """Replace every ``${NAME}`` in ``template`` with ``env[NAME]``.

    Raises ``TemplateError`` naming the first variable that ``env`` does not set (or sets
    empty): a node with an empty ``node_id`` or ``advertise_url`` must not start."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not env.get(name):
            raise TemplateError(f"{source}: ${{{name}}} is used but the environment variable {name} is not set")
        return env[name]

    return VARIABLE.sub(value, template)


# What the supervisor keeps of root: switching its workers' user, and signalling them.
SUPERVISOR_CAPS = "-all,+setuid,+setgid,+kill"


def become_supervisor_user(argv: list[str]) -> None:
    """As root with ``CALLFLEET_SUPERVISOR_USER`` set: exec this script again as that user,
    with ``SUPERVISOR_CAPS`` as ambient capabilities (they survive the exec of Python).
    Returns only when there is nothing to do."""
    user = os.environ.get("CALLFLEET_SUPERVISOR_USER")
    if os.getuid() != 0 or not user:
        return
    entry = pwd.getpwnam(user)
    sys.stdout.flush()
    os.execvp("setpriv", ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
                          "--no-new-privs",
                          f"--inh-caps={SUPERVISOR_CAPS}", f"--ambient-caps={SUPERVISOR_CAPS}", "--",
                          sys.executable, os.path.abspath(argv[0]), *argv[1:]])


def main(argv: list[str]) -> int:
    """Render the template and exec the supervisor; returns 2 only when it cannot."""
    become_supervisor_user(argv)
    template = Path(argv[1] if len(argv) > 1 else TEMPLATE)
    rendered = Path(os.environ.get("CALLFLEET_RENDERED_CONFIG", RENDERED))
    try:
        text = render(template.read_text(), os.environ, str(template))
    except OSError as exc:
        print(f"callfleet entrypoint: {template}: cannot read: {exc.strerror} (mount the config there)",
              file=sys.stderr)
        return 2
    except TemplateError as exc:
        print(f"callfleet entrypoint: {exc}", file=sys.stderr)
        return 2
    rendered.unlink(missing_ok=True)
    with os.fdopen(os.open(rendered, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    sys.stdout.flush()
    os.execvp("callfleet", ["callfleet", "supervisor", "--config", str(rendered)])
    return 0  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv))
