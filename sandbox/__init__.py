"""A local stand-in for Daily's cloud: REST API, rooms that route audio and messages,
synthetic callers, and ``sandbox.client`` -- daily-python's API, offline."""
