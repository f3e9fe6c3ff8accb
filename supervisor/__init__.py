"""The callfleet daemon: config, worker pool, session actors, Daily REST, store, control."""
