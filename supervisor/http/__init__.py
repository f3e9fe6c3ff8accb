"""The HTTP API (aiohttp): app factory, middlewares, views."""
