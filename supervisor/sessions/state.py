"""A session's states and end reasons: the one definition the actor, the store, the views,
the OpenAPI document and the bench all read."""

from __future__ import annotations

import enum


class SessionState(enum.StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    JOINING = "joining"
    JOINED = "joined"
    LEAVING = "leaving"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({SessionState.ENDED, SessionState.FAILED})


class EndReason(enum.StrEnum):
    STOPPED = "stopped"
    MAX_DURATION = "max_duration"
    IDLE = "idle"
    PARTICIPANT_LEFT = "participant_left"
    JOIN_FAILED = "join_failed"
    WORKER_CRASHED = "worker_crashed"
    REST_FAILED = "rest_failed"
    DRAINED = "drained"
    SUPERVISOR_LOST = "supervisor_lost"
    NO_WORKER = "no_worker"
    CALL_ENDED = "call_ended"  # ejected, room expired or deleted under the bot
    BOT_ENDED = "bot_ended"
    BOT_FINISHED = "bot_finished"  # a hosted bot's bot() returned
    BOT_ERROR = "bot_error"  # a hosted bot's bot() raised
    DIALIN_FAILED = "dialin_failed"
    NODE_LOST = "node_lost"  # cluster mode: the node running it went away (marked by a survivor)
    ERROR = "error"

    @property
    def failure(self) -> bool:
        """A failure of the session rather than a normal end."""
        return self in FAILURES


FAILURES = frozenset({EndReason.JOIN_FAILED, EndReason.WORKER_CRASHED, EndReason.REST_FAILED, EndReason.NO_WORKER,
                      EndReason.SUPERVISOR_LOST, EndReason.DIALIN_FAILED, EndReason.ERROR, EndReason.BOT_ERROR,
                      EndReason.NODE_LOST})
