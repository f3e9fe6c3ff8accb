"""Middlewares: Daily-shaped errors for everything, bearer auth, request ids in the logs."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from supervisor.http.errors import ApiError

log = structlog.get_logger("supervisor.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEY = web.AppKey("api_key", str)
# Handlers that need no bearer key, decided by the route a request matched (never by its
# path's spelling): probes and the metrics scrape, and handlers that check a credential of
# their own (the Daily proxy its per-session keys, a stream WebSocket its stream token).
OPEN_HANDLERS = web.AppKey("open_handlers", set)
# Set on a request by an earlier check that authenticated it another way (a signed dial-in
# webhook, a node of the same cluster): the bearer key is then not asked for.
AUTHENTICATED = web.RequestKey("authenticated", bool)


@web.middleware
async def bind_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or secrets.token_hex(8)
    session_id = request.match_info.get("id")
    with structlog.contextvars.bound_contextvars(request_id=request_id, **({"session_id": session_id} if session_id else {})):
        response = await handler(request)
        response.headers["X-Request-Id"] = request_id
        return response


@web.middleware
async def daily_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "invalid-request-error", "request body is larger than 1 MB") from None
    except web.HTTPMethodNotAllowed:
        raise ApiError(405, "invalid-request-error", f"{request.method} is not allowed on {request.path}") from None
    except web.HTTPNotFound:
        raise ApiError(404, "not-found", f"{request.path} does not exist") from None
    except web.HTTPException as exc:
        raise ApiError(exc.status, "invalid-request-error", exc.reason) from None
    except Exception:
        log.exception("unhandled error", path=request.path)
        raise ApiError(500, "server-error", "internal server error") from None


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    expected = request.app[API_KEY]
    if expected and not request.get(AUTHENTICATED) and request.match_info.handler not in request.app[OPEN_HANDLERS]:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), expected.encode()):
            raise ApiError(401, "authentication-error", "missing or invalid bearer key")
    return await handler(request)
