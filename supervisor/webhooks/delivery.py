"""One event's delivery: POST it, signed anew for every attempt, until the receiver takes
it, refuses it, or the attempts run out.

Retried: a timeout, a connection that fails (refused, reset, DNS), a 5xx and a 429 (after
its ``Retry-After`` when that is longer than the back-off). Not retried: any other status
outside 2xx (a 4xx says the receiver will never take it; a redirect is not followed, as a
signed body must not go where the operator did not point it).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import msgspec

from callfleet.backoff import Backoff
from supervisor.webhooks.events import WebhookEvent
from supervisor.webhooks.signing import headers

# POST(body, headers) -> (status, Retry-After header or None); raises on timeout or connection failure.
Post = Callable[[bytes, dict[str, str]], Awaitable[tuple[int, str | None]]]


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # a 2xx
    REFUSED = "refused"  # a status that will not change on retry (4xx but 429, 3xx)
    GAVE_UP = "gave_up"  # every attempt timed out, failed to connect, or got 5xx/429


@dataclass(frozen=True)
class Report:
    outcome: Outcome
    attempts: int
    last: str  # the last attempt's result: "HTTP 500", "timeout", "ClientConnectorError: …"


def retryable(status: int) -> bool:
    return status >= 500 or status == 429


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (its HTTP-date form is not used by webhook receivers)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class Delivery:
    """Delivers events to one receiver with ``policy``'s back-off between attempts."""

    def __init__(self, key: bytes, post: Post, policy: Backoff, max_attempts: int, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._key = key
        self._post = post
        self._policy = policy
        self._max_attempts = max_attempts
        self._clock = clock
        self._sleep = sleep

    async def deliver(self, event: WebhookEvent) -> Report:
        """Attempt until delivered, refused or ``max_attempts`` have failed; never raises
        (but for cancellation)."""
        body = msgspec.json.encode(event)
        last = ""
        at_least: float | None = None  # the receiver's Retry-After, capped at the back-off's ceiling
        for attempt in range(self._max_attempts):
            if attempt:
                await self._sleep(self._policy.delay(attempt - 1, at_least=at_least))
            at_least = None
            try:
                status, retry_after = await self._post(body, headers(self._key, event.id, int(self._clock()), body))
            except TimeoutError:
                last = "timeout"
                continue
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            last = f"HTTP {status}"
            if 200 <= status < 300:
                return Report(Outcome.DELIVERED, attempt + 1, last)
            if not retryable(status):
                return Report(Outcome.REFUSED, attempt + 1, last)
            asked = retry_after_s(retry_after)
            at_least = None if asked is None else min(asked, self._policy.max_s)
        return Report(Outcome.GAVE_UP, self._max_attempts, last)


def http_post(session: aiohttp.ClientSession, url: str, timeout_s: float) -> Post:
    """``Post`` over ``session`` to ``url``; each attempt bounded by ``timeout_s`` in all."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(body: bytes, hdrs: dict[str, str]) -> tuple[int, str | None]:
        async with session.post(url, data=body, headers=hdrs, timeout=timeout, allow_redirects=False) as resp:
            await resp.release()
            return resp.status, resp.headers.get("Retry-After")

    return post
