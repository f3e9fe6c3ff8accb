"""The phone network's switchboard: the calls in progress, each a phone that can be told to
hang up. Twilio's REST API (``sandbox.telephony.rest``) ends calls through it.

A phone reaches it through a ``Carrier``: ``PhoneNetwork`` itself for a phone in the
sandbox's process and loop; ``sandbox.telephony.lines.RemoteCarrier`` for one elsewhere.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

ACCOUNT_SID = "AC" + "0" * 32  # the sandbox's account, unless a phone says otherwise
API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters (``CA`` a call, ``MZ`` a stream) and 32 hex digits."""
    return prefix + secrets.token_hex(16)


class CallStatus(enum.Enum):
    """Twilio's call statuses, those a sandbox call goes through: its phone is answered as
    it dials (the webhook is the answer)."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


@dataclass
class Call:
    """A call on the network: Twilio's call resource, and how to make its phone hang up."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    started_at: float  # Unix time
    hang_up: Callable[[], None]
    status: CallStatus = CallStatus.IN_PROGRESS
    direction: str = "inbound"
    ended_at: float | None = None


class Carrier(Protocol):
    """What a phone asks of the network its call goes through."""

    async def connect(self, account_sid: str, from_number: str, to_number: str,
                      hang_up: Callable[[], None]) -> str:
        """Register a new call and answer its CallSid; ``hang_up`` is called (on the phone's
        loop) if the call is ended through the REST API. Raises if the network cannot be
        reached (``lines.LineError``)."""
        ...

    async def disconnect(self, call_sid: str) -> None:
        """The call is over: forget it."""
        ...


class PhoneNetwork:
    """The calls in progress, by CallSid. ``auth_token`` is the account's: when set, the REST
    API takes only it (any when empty, as the sandbox takes any Daily key)."""

    def __init__(self, auth_token: str = "", clock: Callable[[], float] = time.time) -> None:
        self.auth_token = auth_token
        self.clock = clock
        self.calls: dict[str, Call] = {}

    def open(self, account_sid: str, from_number: str, to_number: str, hang_up: Callable[[], None]) -> Call:
        """A new call, in progress."""
        call = Call(new_sid("CA"), account_sid, from_number, to_number, self.clock(), hang_up)
        self.calls[call.sid] = call
        return call

    def find(self, account_sid: str, call_sid: str) -> Call | None:
        """The call ``call_sid`` of ``account_sid``, if it is in progress."""
        call = self.calls.get(call_sid)
        return call if call is not None and call.account_sid == account_sid else None

    def end(self, call_sid: str) -> Call | None:
        """Take the call off the network, completed (nothing more reaches its phone)."""
        call = self.calls.pop(call_sid, None)
        if call is not None:
            call.status, call.ended_at = CallStatus.COMPLETED, self.clock()
        return call

    def hang_up(self, account_sid: str, call_sid: str) -> Call | None:
        """End the call and tell its phone to hang up; None if there is no such call."""
        if self.find(account_sid, call_sid) is None:
            return None
        call = self.end(call_sid)
        assert call is not None
        call.hang_up()
        return call

    def authorized(self, account_sid: str, username: str, password: str) -> bool:
        """Whether basic auth ``username``:``password`` may act for ``account_sid``: its SID
        and the auth token; without a token, its SID or any API key (``SK…``) with any secret."""
        if self.auth_token:
            return username == account_sid and hmac.compare_digest(password.encode(), self.auth_token.encode())
        return username == account_sid or username.startswith("SK")

    # -- Carrier, for a phone in this process ------------------------------------------------

    async def connect(self, account_sid: str, from_number: str, to_number: str,
                      hang_up: Callable[[], None]) -> str:
        return self.open(account_sid, from_number, to_number, hang_up).sid

    async def disconnect(self, call_sid: str) -> None:
        self.end(call_sid)
