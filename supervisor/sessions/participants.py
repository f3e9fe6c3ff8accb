"""Who is in a session's call, as the session's bot should see it.

Humans only: the bot's own participant -- and every bot participant the session had
before a failover, which can linger in the room after its worker was killed -- never
counts. Each human is announced to the bot once, however many times the call reports it
(in the join's participant list and again as a join event). After a failover the rejoin's
participant list is the truth: anyone who left during the gap is reported gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Participant:
    """A human in the call, as the call reported them."""

    id: str
    name: str
    raw: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_bot": False}


class Participants:
    """The humans in one session's call, and the bot's own participant ids."""

    def __init__(self) -> None:
        self.humans: dict[str, Participant] = {}
        self.bot_id: str | None = None
        self.bot_name = "bot"  # the bot's name in the call, as its join reported it
        self._former_bot_ids: set[str] = set()
        self.had_human = False

    def bot_joined(self, bot_id: str | None, name: str | None = None) -> None:
        """The bot (re)joined as ``bot_id`` named ``name`` (a hosted Pipecat bot names itself:
        ``DailyTransport``'s ``bot_name``); an earlier bot id is never a human."""
        if self.bot_id is not None and self.bot_id != bot_id:
            self._former_bot_ids.add(self.bot_id)
            self.humans.pop(self.bot_id, None)
        self.bot_id = bot_id
        if name:
            self.bot_name = name

    def _is_bot(self, pid: str, participant: dict[str, Any]) -> bool:
        info = participant.get("info") or {}
        return bool(info.get("isLocal")) or pid == self.bot_id or pid in self._former_bot_ids

    def joined(self, participant: dict[str, Any]) -> Participant | None:
        """A participant was reported: the new human to announce, or None (a bot, or one
        already announced)."""
        pid = participant.get("id")
        if not pid or self._is_bot(pid, participant) or pid in self.humans:
            return None
        info = participant.get("info") or {}
        human = Participant(pid, info.get("userName") or "", participant)
        self.humans[pid] = human
        self.had_human = True
        return human

    def left(self, participant: dict[str, Any]) -> Participant | None:
        """A participant left: the human who is gone, or None if it was not one."""
        return self.humans.pop(participant.get("id") or "", None)

    def reconcile(self, present: dict[str, dict[str, Any]]) -> tuple[list[Participant], list[Participant]]:
        """After a rejoin: ``present`` is the join's participant list (keyed by id, "local"
        is the bot). Returns (humans who arrived during the gap, humans who left during it)."""
        remote = {p.get("id"): p for key, p in present.items() if key != "local" and p.get("id")}
        gone = [h for pid, h in list(self.humans.items()) if pid not in remote]
        for human in gone:
            del self.humans[human.id]
        arrived = [h for h in (self.joined(p) for p in remote.values()) if h is not None]
        return arrived, gone

    def views(self) -> list[dict[str, Any]]:
        return [h.view() for h in self.humans.values()]
