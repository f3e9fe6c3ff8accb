"""What ``callfleet ctl sessions`` and ``ctl session ID`` print, from the views the API
serves (``describe_record``): an ordinary end is not an error, and the bot is not people."""

from __future__ import annotations

from typing import Any

from supervisor.commands.sessions import Session, Sessions
from supervisor.sessions.state import SessionState
from supervisor.sessions.view import describe_record
from supervisor.store import SessionRecord

CALLER = {"id": "p-caller", "name": "caller", "is_bot": False}


def _view(state: SessionState = SessionState.JOINED, end_reason: str | None = None, detail: str | None = None,
          people: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    record = SessionRecord(id="s1", state=state, profile="echo", kind="echo", worker_pid=42, requested_at=1.0,
                           end_reason=end_reason, error=detail)
    return describe_record(record, participants=people, bot_id="p-bot", node_id="n1")


def _field(text: str, label: str) -> list[str]:
    return [line[16:] for line in text.splitlines() if line[:16].rstrip() == label]


def test_an_ordinary_hang_up_is_shown_as_how_the_session_ended_not_as_an_error() -> None:
    view = _view(SessionState.ENDED, "participant_left", "the last participant left")
    assert view["error"] is None and view["end_detail"] == "the last participant left"
    shown = Session().render(view)
    assert _field(shown, "ended") == ["the last participant left"]
    assert _field(shown, "error") == [] and "end_detail" not in shown
    assert _field(shown, "end_reason") == ["participant_left"]


def test_a_failure_is_shown_as_an_error() -> None:
    view = _view(SessionState.FAILED, "worker_crashed", "the worker was killed by SIGKILL")
    assert view["error"] == view["end_detail"] == "the worker was killed by SIGKILL"
    shown = Session().render(view)
    assert _field(shown, "error") == ["the worker was killed by SIGKILL"] and _field(shown, "ended") == []


def test_an_end_reason_this_version_does_not_know_keeps_its_detail_as_an_error() -> None:
    view = _view(SessionState.FAILED, "some_future_reason", "it went wrong somewhere new")
    assert view["error"] == "it went wrong somewhere new"


def test_a_live_session_shows_neither_an_end_nor_an_error() -> None:
    shown = Session().render(_view(people=[CALLER]))
    assert _field(shown, "ended") == [] and _field(shown, "error") == []


def test_the_people_column_counts_the_participants_but_not_the_bot() -> None:
    alone = _view()
    with_caller = {**_view(people=[CALLER]), "session_id": "s2"}
    assert [p["is_bot"] for p in with_caller["participants"]] == [True, False]
    header, *rows = Sessions().render([alone, with_caller]).splitlines()
    people = header.split().index("PEOPLE")
    assert {row.split()[0]: row.split()[people] for row in rows} == {"s1": "0", "s2": "1"}
