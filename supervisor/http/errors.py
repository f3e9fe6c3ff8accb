"""Errors in Daily's shape: ``{"error": "<type>", "info": "<human text>"}``."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(web.HTTPException):
    def __init__(self, status: int, error: str, info: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(text=json.dumps({"error": error, "info": info}), content_type="application/json",
                         headers=headers)


def invalid(info: str) -> ApiError:
    return ApiError(400, "invalid-request-error", info)


def not_found(info: str) -> ApiError:
    return ApiError(404, "not-found", info)
