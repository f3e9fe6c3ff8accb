"""App messages in a room: from a participant, from the REST API, and Daily Prebuilt's chat."""

from __future__ import annotations

from typing import Any

from sandbox.rooms.endpoint import RoomEndpoint
from sandbox.rooms.participants import LiveRoom, Participant, RoomError
from sandbox.wire import encoder

APP_MESSAGE_LIMIT = 4096


class Messages:
    """Delivers app messages to one participant or to everyone but the sender."""

    def __init__(self, endpoint: RoomEndpoint) -> None:
        self.endpoint = endpoint

    def send(self, live: LiveRoom, message: Any, recipient: str | None, *, sender: str) -> None:
        """Send ``message`` to ``recipient`` (None or ``*``: everyone but the sender).
        Raises ``RoomError`` for a message over 4 KB or a recipient not in the call."""
        if len(encoder.encode(message)) > APP_MESSAGE_LIMIT:
            raise RoomError(f"app message is larger than {APP_MESSAGE_LIMIT} bytes")
        if recipient in (None, "*"):
            self.endpoint.broadcast(live, "on_app_message", message, sender, skip=sender)
            return
        target = live.participants.get(recipient)
        if target is None:
            raise RoomError(f"no participant {recipient} in the call")
        self.endpoint.event(target, "on_app_message", message, sender)

    def op_app_message(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        self.send(live, args.get("message"), args.get("recipient"), sender=p.id)

    def op_send_prebuilt_chat_message(self, p: Participant, live: LiveRoom, args: dict[str, Any]) -> None:
        message = {"event": "chat-msg", "message": args.get("message"), "name": args.get("user_name") or p.user_name, "room": "main-room"}
        self.endpoint.broadcast(live, "on_app_message", message, p.id, skip=p.id)
