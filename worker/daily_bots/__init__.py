"""The Daily Bots profiles (seed 003) as built-in Pipecat bots: services, request parsing, pipelines."""
