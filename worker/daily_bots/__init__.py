"""Daily Bots' profiles as built-in Pipecat bots: services, request parsing, pipelines."""
