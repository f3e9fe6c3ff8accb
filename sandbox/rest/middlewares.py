"""The REST app's middlewares: every error in Daily's shape; Daily's bearer key, the injected
faults and Daily's rate limits in front of every ``/v1`` call (the sandbox's own control
endpoints and download links excepted)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from sandbox.limits import rate_class, retry_after_header
from sandbox.rest.errors import DailyError
from sandbox.rest.keys import API_KEY, BUCKETS, FAULTS

log = structlog.get_logger("sandbox.rest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def daily_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DailyError:
        raise
    except web.HTTPNotFound:
        raise DailyError(404, "not-found", f"{request.path} does not exist") from None
    except web.HTTPMethodNotAllowed:
        raise DailyError(405, "invalid-request-error", f"{request.method} is not allowed on {request.path}") from None
    except web.HTTPRequestEntityTooLarge:
        raise DailyError(413, "invalid-request-error", "request body too large") from None
    except Exception:
        log.exception("unhandled error", path=request.path)
        raise DailyError(500, "server-error", "internal server error") from None


@web.middleware
async def auth_and_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith("/v1/") or path.startswith("/v1/sandbox/") or "/download" in path:
        return await handler(request)
    header = request.headers.get("Authorization")
    if header is None:
        raise DailyError(400, "authorization-header-error", "Authorization header missing")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise DailyError(400, "authorization-header-error", "Authorization header must be 'Bearer <API key>'")
    expected = request.app[API_KEY]
    if expected and not hmac.compare_digest(key.strip().encode(), expected.encode()):
        raise DailyError(401, "authentication-error", "Invalid API key")
    faults = request.app[FAULTS]
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.stall_rate and faults.rng.random() < faults.stall_rate:
        await asyncio.sleep(faults.stall_s)
    if faults.rate_limit_burst > 0:
        faults.rate_limit_burst -= 1
        raise DailyError(429, "rate-limit-error", "Rate limit exceeded (injected)",
                         headers={"Retry-After": str(faults.retry_after_s)})
    if faults.error_rate and faults.rng.random() < faults.error_rate:
        raise DailyError(500, "server-error", "internal server error (injected)")
    buckets = request.app[BUCKETS]
    buckets.enabled = faults.rate_limits
    wait = buckets.take(key.strip(), rate_class(request.method, path))
    if wait:
        raise DailyError(429, "rate-limit-error", "Rate limit exceeded",
                         headers={"Retry-After": retry_after_header(wait)})
    return await handler(request)
