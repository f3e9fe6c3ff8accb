"""Environment variables the supervisor sets for its worker processes (through the pool's
forkserver, which inherits the supervisor's environment when it starts)."""

PRELOAD_BACKEND_ENV = "CALLFLEET_BACKEND"  # "sandbox" or "daily": the hosted daily module's backend
PRELOAD_BOTS_ENV = "CALLFLEET_PIPECAT_BOTS"  # pipecat bot specs to preload, one per line
# Set when workers run as another user: the forkserver becomes that user before it imports
# anything else, so every worker -- and every bot module it preloads -- runs as it.
WORKER_UID_ENV = "CALLFLEET_WORKER_UID"
WORKER_GID_ENV = "CALLFLEET_WORKER_GID"
WORKER_HOME_ENV = "CALLFLEET_WORKER_HOME"
# Set for the processes that run bots (the forkserver, the bot import check): importing
# worker.privileges there gives up what a bot must not have; imported elsewhere it does nothing.
DROP_PRIVILEGES_ENV = "CALLFLEET_DROP_PRIVILEGES"
# Set when pool.merge_pages is on: the forkserver opts itself and every worker into KSM.
MERGE_PAGES_ENV = "CALLFLEET_MERGE_PAGES"
