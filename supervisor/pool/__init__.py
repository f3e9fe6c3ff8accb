"""The worker pool: the worker processes, each one job in its own module.

- ``pool``: the Pool -- desired state, workers promised to sessions and taken back, and
  the loop that carries out ``reconcile``'s actions;
- ``reconcile``: the one decision step, pure (desired state and observed workers in,
  actions out);
- ``processes``: starting, killing and reaping processes off the event loop;
- ``lanes``: which workers host which bots (built-in or Pipecat), each lane with its own
  forkserver and warm workers;
- ``forkserver``: a lane's forkserver and what it preloads;
- ``router``: the workers' socket -- what arrives goes where it belongs, what is sent leaves
  through it;
- ``pending``: request correlation (every command's one reply);
- ``liveness``: the handshake and the pings;
- ``memory``: RSS and PSS sampling;
- ``workers``: what the supervisor knows of one worker, and what a session gives the pool
  to hear from it.
"""

from supervisor.pool.pool import Pool, PoolFull
from supervisor.pool.reconcile import WorkerState
from supervisor.pool.workers import WorkerGone, WorkerHandle, WorkerListener

__all__ = ["Pool", "PoolFull", "WorkerGone", "WorkerHandle", "WorkerListener", "WorkerState"]
