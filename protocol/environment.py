"""Environment variables the supervisor sets for its worker processes (through the pool's
forkserver, which inherits the supervisor's environment when it starts)."""

PRELOAD_BACKEND_ENV = "CALLFLEET_BACKEND"  # "sandbox" or "daily": the hosted daily module's backend
PRELOAD_BOTS_ENV = "CALLFLEET_PIPECAT_BOTS"  # pipecat bot specs to preload, one per line
