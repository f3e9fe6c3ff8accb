"""Errors in Daily's shape ``{"error", "info"}``."""

from __future__ import annotations

import json

from aiohttp import web


class DailyError(web.HTTPException):
    """An error answered in Daily's shape ``{"error", "info"}``."""

    def __init__(self, status: int, error: str, info: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": error, "info": info}),
            content_type="application/json",
            headers=headers,
        )


def bad_request(info: str) -> DailyError:
    """Daily's 400 ``invalid-request-error``."""
    return DailyError(400, "invalid-request-error", info)


def not_found(info: str) -> DailyError:
    """Daily's 404 ``not-found``."""
    return DailyError(404, "not-found", info)
