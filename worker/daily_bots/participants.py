"""Who is in the call besides the bot, and what the pipeline does about it.

- The call ends when the last participant other than the bot leaves, never while someone
  is still there (``Participants``). Daily tells a joiner about everyone already in the
  room, one participant-joined each, so the joined/left events are the whole count. Daily
  marks no participant as a bot; every remote participant counts as a caller.
- ``service_options.daily.mute_on_third_participant_join`` (``HandoffMute``): when a third
  participant joins (the bot, its caller, and one more: the human taking over, Daily Bots'
  handoff), the bot stops speaking at once (an interruption) and stops listening: the
  callers' audio and transcripts no longer reach its turn taking or its LLM, and no audio of
  its own reaches the room. It stays muted for the rest of the call, whoever leaves: a
  handoff is not undone by the agent stepping out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionWorkerFrame,
    OutputAudioRawFrame,
    TranscriptionFrame,
    UserImageRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

HANDOFF_AT = 2  # remote participants: with the bot, the third participant of the call


class _Gate(FrameProcessor):
    """Lets everything through until its ``HandoffMute`` mutes; then drops ``dropped``."""

    def __init__(self, mute: HandoffMute, dropped: tuple[type[Frame], ...], name: str) -> None:
        super().__init__(name=name)
        self._mute = mute
        self._dropped = dropped

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._mute.muted and direction is FrameDirection.DOWNSTREAM and isinstance(frame, self._dropped):
            return
        await self.push_frame(frame, direction)


class HandoffMute:
    """The bot's mute for a handoff: ``inbound`` goes right after the transport's input
    (the callers' audio, transcripts and camera stop there), ``outbound`` right before its
    output (the bot's audio stops there)."""

    def __init__(self) -> None:
        self.muted = False
        self.inbound = _Gate(self, (InputAudioRawFrame, TranscriptionFrame, InterimTranscriptionFrame,
                                    UserImageRawFrame), "handoff-mute-in")
        self.outbound = _Gate(self, (OutputAudioRawFrame,), "handoff-mute-out")

    async def mute(self) -> None:
        """Mute for the rest of the call, cutting off whatever the bot is saying."""
        if self.muted:
            return
        self.muted = True
        logger.info("a third participant joined: the bot stops speaking and listening (mute_on_third_participant_join)")
        # The worker turns this into an InterruptionFrame: the LLM and TTS drop the reply in progress.
        await self.inbound.push_frame(InterruptionWorkerFrame(), FrameDirection.UPSTREAM)


class Participants:
    """The remote participants present; calls ``on_last_left`` when the last of them leaves,
    and mutes ``handoff`` (if any) when a third participant joins."""

    def __init__(self, on_last_left: Callable[[], Awaitable[None]], handoff: HandoffMute | None = None,
                 roster: Callable[[], Iterable[str]] | None = None) -> None:
        self.present: set[str] = set()
        self._on_last_left = on_last_left
        self._handoff = handoff
        # Who the call client says is in the call: a participant who joined before these
        # events were watched (the pipeline starts after the bot joined) is in it, not here.
        self._roster = roster

    async def joined(self, participant: Any) -> None:
        self.present.add(participant["id"])
        if self._handoff is not None and len(self.present) >= HANDOFF_AT:
            await self._handoff.mute()

    async def left(self, participant: Any) -> None:
        if self._roster is not None:
            self.present.update(self._roster())
        self.present.discard(participant["id"])
        if self.present:
            logger.info(f"participant {participant['id']} left; {len(self.present)} still in the call")
            return
        logger.info(f"participant {participant['id']} left; nobody is left in the call: ending it")
        await self._on_last_left()


def watch(transport: Any, on_last_left: Callable[[], Awaitable[None]],
          handoff: HandoffMute | None = None) -> Participants:
    """Count ``transport``'s participants from its joined/left events (``Participants``)."""
    participants = Participants(on_last_left, handoff,
                                roster=lambda: [pid for pid in transport.participants() if pid != "local"])

    @transport.event_handler("on_participant_joined")
    async def on_participant_joined(transport: Any, participant: Any) -> None:
        await participants.joined(participant)

    @transport.event_handler("on_participant_left")
    async def on_participant_left(transport: Any, participant: Any, reason: Any) -> None:
        await participants.left(participant)

    return participants
