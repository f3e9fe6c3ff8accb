"""A session's room and meeting tokens: everything the session asks of Daily's REST API.

The room comes from the room pool when one lives long enough, else it is created for the
session (or it is the user's own, which is never ours to delete). Every token and every
room made here outlives the session's deadline, so neither ``eject_at_room_exp`` nor a
token's ``exp`` can cut the call before ``max_duration``. A room is written to the store's
ledger before its create call, so a stop at any moment -- even one that cancels the create
-- leaves nothing that the end of the session or the next start does not delete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from supervisor.config import Config
from supervisor.daily_rest import (
    DailyAPIError,
    DailyREST,
    DailyRoomParams,
    DailyRoomProperties,
    DailyRoomSipParams,
    get_name_from_url,
)
from supervisor.rooms.ledger import delete_room
from supervisor.rooms.pool import RoomPool
from supervisor.store import Store

# Past the deadline a room and its tokens live this much longer: the bot's leave, clock skew.
EXPIRY_MARGIN_S = 120


class TokenRefused(Exception):
    """A meeting token given with the request is not valid for the session's room."""


BOT_NAME = "bot"  # the bot's name in the call (its tokens' user_name)


@dataclass
class RoomRequest:
    """What a start request says about the room; the defaults are a plain session's."""

    room_url: str | None = None  # the caller's own room: never ours to delete
    room_properties: dict[str, Any] = field(default_factory=dict)
    user_token_properties: dict[str, Any] = field(default_factory=dict)
    sip: dict[str, Any] | None = None  # a dial-in room's SIP settings
    bot_token: str | None = field(default=None, repr=False)  # a token the caller gave for the bot, with room_url

    @property
    def pooled(self) -> bool:
        """A plain session, which a pre-created room with default tokens can serve."""
        return not (self.room_url or self.room_properties or self.user_token_properties or self.sip)


class SessionRoom:
    """The room of one session; used only by that session's actor."""

    def __init__(self, session_id: str, request: RoomRequest, config: Config, rest: DailyREST, store: Store,
                 room_pool: RoomPool | None) -> None:
        self.session_id = session_id
        self.request = request
        self.config = config
        self.rest = rest
        self.store = store
        self.room_pool = room_pool
        self.url: str | None = None
        self.name: str | None = None
        self.created = False  # ours to delete
        self.sip_endpoint: str | None = None
        self.expires_at: float | None = None
        self._first_bot_token: str | None = None

    async def prepare(self, deadline: float) -> str:
        """Make the room ready to outlive ``deadline`` (Unix seconds); returns the user's
        token. Raises ``DailyAPIError`` or ``TokenRefused``."""
        req = self.request
        ready = self.room_pool.take(deadline + EXPIRY_MARGIN_S) if self.room_pool is not None and req.pooled else None
        if ready is not None:
            self.url, self.name, self.created = ready.url, ready.name, True
            self.expires_at = ready.expires_at
            self._first_bot_token = ready.bot_token
            return ready.user_token
        expires_at = deadline + EXPIRY_MARGIN_S
        if req.room_url:
            self.url, self.name = req.room_url, get_name_from_url(req.room_url)
            if req.bot_token:
                await self._check_given_token(req.bot_token)
                self._first_bot_token = req.bot_token
        else:
            expires_at = max(expires_at, time.time() + self.config.daily.room_exp_s)
            props = DailyRoomProperties(exp=expires_at, extra=dict(req.room_properties))
            if req.sip is not None:
                props.sip = DailyRoomSipParams(**req.sip)
            self.name, self.created = f"{self.config.daily.room_prefix}{self.session_id}", True
            self.store.remember_room(self.name)  # before the create: a stop or crash now cannot leak it
            room = await self.rest.create_room(DailyRoomParams(name=self.name, privacy="private",
                                                               properties=props))
            self.url, self.sip_endpoint = room.url, room.sip_endpoint
        self.expires_at = expires_at
        user_params = {"exp": int(expires_at), **req.user_token_properties}
        if self._first_bot_token is not None:
            return await self.rest.get_token(self.url, owner=False, params=user_params)
        # Both tokens at once: one round trip less before the bot can join.
        user_token, self._first_bot_token = await asyncio.gather(
            self.rest.get_token(self.url, owner=False, params=user_params),
            self._mint_bot_token(expires_at),
        )
        return user_token

    async def _check_given_token(self, token: str) -> None:
        try:
            props = await self.rest.validate_token(token)
        except DailyAPIError as exc:
            if exc.status in (400, 401, 403, 404):
                raise TokenRefused(f"token: Daily does not accept it ({exc.error}: {exc.info})") from None
            raise
        room = props.get("room_name")
        if room is not None and room != self.name:
            raise TokenRefused(f"token: it is for room {room!r}, not {self.name!r}")

    async def bot_token(self, deadline: float) -> str:
        """The bot's owner token: the one made with the room for the first join, then a
        fresh one per rejoin, valid past ``deadline``. Raises ``DailyAPIError``."""
        if self._first_bot_token is not None:
            token, self._first_bot_token = self._first_bot_token, None
            return token
        return await self._mint_bot_token(deadline + EXPIRY_MARGIN_S)

    async def _mint_bot_token(self, expires_at: float) -> str:
        assert self.url is not None
        return await self.rest.get_token(self.url, owner=True,
                                         params={"exp": int(expires_at), "user_name": BOT_NAME})

    async def delete(self) -> str | None:
        """Delete the room if the session made or took it; returns the error if it stays
        recorded for the next start."""
        if not self.created or self.name is None:
            return None
        error = await delete_room(self.rest, self.store, self.name)
        if error is None:
            self.created = False
        return error
