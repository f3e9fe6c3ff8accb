"""A session's record as its actor keeps it: written to the store at every change, with the
live counters of its worker and of its bot's voice. Each state change is also published:
to the event feed, to the log and, in a cluster, to the directory."""

from __future__ import annotations

from typing import Any

from supervisor.sessions.bot_link import BotLink
from supervisor.sessions.participants import Participants
from supervisor.sessions.resources import SessionResources
from supervisor.sessions.services import Services
from supervisor.sessions.state import SessionState
from supervisor.sessions.turns import SessionFigures
from supervisor.sessions.view import describe_record
from supervisor.store import SessionRecord


class RecordKeeper:
    """Writes and publishes one session's record; used only by that session's actor."""

    def __init__(self, record: SessionRecord, services: Services, link: BotLink, participants: Participants,
                 log: Any) -> None:
        self.record = record
        self.s = services
        self.link = link
        self.participants = participants
        self.log = log
        self.phone: Any = None  # a phone call's line (supervisor.sessions.phone): its media are the frames
        self.figures = SessionFigures()  # what its bot's Pipecat pipelines measured
        self.resources = SessionResources()  # its worker's CPU and memory, sampled

    def set_state(self, state: SessionState, **stamps: Any) -> None:
        """Move the record to ``state`` (with timestamps such as ``joined_at``), write it,
        and publish the change."""
        self.record.state = state
        for key, value in stamps.items():
            setattr(self.record, key, value)
        self.save()
        self.s.publish("session", {"session_id": self.record.id, "state": state.value, "profile": self.record.profile,
                                   "end_reason": self.record.end_reason})
        if self.s.cluster is not None:
            self.s.cluster.publish_session(self.describe())
        self.log.info("session state", state=state.value, end_reason=self.record.end_reason)

    def save(self) -> None:
        """Write the record with its counters now; a store that fails is logged, not raised."""
        self.save_counters()
        try:
            self.s.store.save(self.record)
        except Exception:
            self.log.exception("could not write the session record")

    def save_counters(self) -> None:
        """Copy the live counters (the worker's and the bot's voice) into the record."""
        r, worker = self.record, self.link.worker
        if worker is not None:
            r.worker_id, r.worker_pid = worker.id, worker.pid
            r.frames_in = worker.frames_in
            if r.kind == "pipecat":  # a hosted bot's audio stays in its worker, which counts it (its Pongs)
                r.frames_in, r.frames_out = worker.bot_frames_in, worker.bot_frames_out
        r.worker_frames_out, r.worker_frames_dropped = self.link.worker_frames()
        if r.kind != "pipecat":
            r.frames_out = self.link.frames_out_sent
        r.frames_dropped = self.link.frames_out_dropped
        r.extra["turns"], r.extra["usage"] = self.figures.turns_view(), self.figures.usage_view()
        r.extra["resources"] = self.resources.view()
        if self.phone is not None:  # the call's audio messages, as the supervisor relayed them
            r.frames_in, r.frames_out, r.frames_dropped = self.phone.media_in, self.phone.media_out, \
                self.phone.dropped_out

    def describe(self) -> dict[str, Any]:
        """The live session as the API shows it."""
        self.save_counters()
        return describe_record(self.record, participants=self.participants.views(), bot_id=self.participants.bot_id,
                               bot_name=self.participants.bot_name)
