"""The call as a session's bot hears it: each human announced once (the first one also
greeted, as Pipecat's ``on_first_participant_joined``), the idle timer armed while nobody is
there, and the call's events that end the session: the last participant left, or the bot
was removed from the call. Every event then reaches the bot's ``on_event``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.messages import CallStateUpdated, Event, ParticipantJoined, ParticipantLeft
from supervisor.bots import Bot
from supervisor.sessions.participants import Participant, Participants
from supervisor.sessions.state import EndReason
from supervisor.sessions.timers import Timers

HOSTED_LEFT_GRACE_S = 5.0  # a hosted bot that left has this long to return from bot()


class CallEvents:
    """What the call's events mean for one session's bot; used only by its actor."""

    def __init__(self, participants: Participants, timers: Timers, stop: Callable[..., None], *,
                 end_on_last_leave: bool, idle_timeout_s: Callable[[], float]) -> None:
        self.participants = participants
        self.timers = timers
        self._stop = stop
        self._end_on_last_leave = end_on_last_leave
        self._idle_timeout_s = idle_timeout_s  # read at each arm: a reload applies to live sessions
        self._greeted = False  # on_first_participant_joined fires once per session

    async def joined(self, bot: Bot, join_data: dict[str, Any]) -> None:
        """The bot is in the call: its ``on_joined``, then each human already there."""
        await bot.on_joined(join_data)
        present = join_data.get("participants") or {}
        for human in [h for key, p in present.items() if key != "local" and (h := self.participants.joined(p))]:
            await self._announce(bot, human)
        self.arm_idle()

    async def rejoined(self, bot: Bot, join_data: dict[str, Any]) -> None:
        """After a failover's rejoin: the humans who left during the gap, then those who
        arrived (the bot keeps its state: ``on_joined`` is once per session)."""
        arrived, gone = self.participants.reconcile(join_data.get("participants") or {})
        for human in gone:
            await bot.on_participant_left(human.raw, "left during failover")
        for human in arrived:
            await self._announce(bot, human)
        if gone and not self.participants.humans:
            self._nobody_left()

    async def on_event(self, bot: Bot, event: Event, *, in_call: bool) -> None:
        """One event from the call (``in_call``: the session is joined, not leaving)."""
        if isinstance(event, ParticipantJoined):
            human = self.participants.joined(event.participant)
            if human is not None:
                await self._announce(bot, human)
        elif isinstance(event, ParticipantLeft):
            gone = self.participants.left(event.participant or {})
            if gone is not None:
                await bot.on_participant_left(event.participant, event.reason or "")
                if not self.participants.humans:
                    self._nobody_left()
        elif isinstance(event, CallStateUpdated) and event.state == "left" and in_call:
            if bot.hosted:
                # A hosted bot leaves on its way out of bot(): how bot() ends (BotFinished)
                # is the session's end reason if it comes soon; else it was removed.
                self.timers.arm("left", HOSTED_LEFT_GRACE_S, self._stop, EndReason.CALL_ENDED,
                                "the bot left the call and bot() did not end")
            else:
                self._stop(EndReason.CALL_ENDED, "the bot was removed from the call (ejected, room expired or deleted)")
        await bot.on_event(event)

    async def _announce(self, bot: Bot, human: Participant) -> None:
        self.timers.cancel("idle")
        if not self._greeted:
            self._greeted = True
            await bot.on_first_participant_joined(human.raw)
        await bot.on_participant_joined(human.raw)

    def _nobody_left(self) -> None:
        if self._end_on_last_leave:
            self._stop(EndReason.PARTICIPANT_LEFT, "the last participant left")
        else:
            self.arm_idle()

    def arm_idle(self) -> None:
        """End the session ``idle`` if nobody comes within the idle timeout."""
        if self.participants.humans:
            return
        idle_s = self._idle_timeout_s()
        self.timers.arm("idle", idle_s, self._stop, EndReason.IDLE, f"no participant for {idle_s:g}s")
