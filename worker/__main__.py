"""``python -m worker --connect ENDPOINT --worker-id ID [--backend NAME]``."""

from __future__ import annotations

import argparse

from worker.main import WorkerOptions, run


def parse(argv: list[str] | None = None) -> WorkerOptions:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--connect", required=True, help="supervisor ROUTER endpoint")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--backend", default="sandbox", help="daily, sandbox or a module path")
    parser.add_argument("--supervisor-pid", type=int, default=None)
    parser.add_argument("--handshake-timeout", type=float, default=10.0)
    parser.add_argument("--log-level", default=None)
    ns = parser.parse_args(argv)
    return WorkerOptions(
        connect=ns.connect,
        worker_id=ns.worker_id,
        backend=ns.backend,
        supervisor_pid=ns.supervisor_pid,
        handshake_timeout_s=ns.handshake_timeout,
        log_level=ns.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    run(parse(argv))
    return 0  # not reached: run() exits the process


if __name__ == "__main__":
    main()
