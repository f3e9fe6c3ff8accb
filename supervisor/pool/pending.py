"""Request correlation: the commands sent to one worker that await their one reply.

Every command carries an id (``WorkerRouter.next_request_id``); the worker's Ok or Err
carries it back. A reply nobody waits for any more (late, or for a request that timed out)
is dropped, and a worker that dies answers everything still waiting with an error, so no
request waits for a reply that cannot come.
"""

from __future__ import annotations

import asyncio

from protocol.messages import Err, ErrCode, Ok


class PendingRequests:
    """Requests sent to one worker that await their one reply."""

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[Ok | Err]] = {}

    def expect(self, request_id: int) -> asyncio.Future[Ok | Err]:
        """A future for the reply to request ``request_id``, to be sent now."""
        fut: asyncio.Future[Ok | Err] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = fut
        return fut

    def forget(self, request_id: int) -> None:
        """The request is answered or given up: a late reply to it is dropped."""
        self._futures.pop(request_id, None)

    def resolve(self, reply: Ok | Err) -> bool:
        """Hand a reply to its request; False when nobody waits for it (late or unknown)."""
        fut = self._futures.get(reply.id)
        if fut is None or fut.done():
            return False
        fut.set_result(reply)
        return True

    def fail_all(self, reason: str) -> None:
        """The worker is gone: every waiting request is answered with an error."""
        for request_id, fut in self._futures.items():
            if not fut.done():
                fut.set_result(Err(request_id, ErrCode.EXITING, reason))

    def __len__(self) -> int:
        return len(self._futures)
