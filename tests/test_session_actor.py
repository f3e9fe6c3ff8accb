"""The session actor's promise: whatever is queued to it when it finishes is answered with
an error, never dropped; and asking a finished session fails at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from supervisor.config import parse
from supervisor.sessions import EndReason, Services, Session, SessionGone, StartRequest, _Ask
from supervisor.store import Store


def services(tmp_path: Path, events: list[tuple[str, dict[str, object]]]) -> Services:
    return Services(parse(""), pool=None, rest=None, store=Store(tmp_path / "sessions.db"),  # type: ignore[arg-type]
                    publish=lambda kind, data: events.append((kind, data)))


async def test_asks_queued_when_the_actor_finishes_are_answered_with_session_gone(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, object]]] = []
    session = Session(services(tmp_path, events), StartRequest(profile="echo", kind="echo"))
    loop = asyncio.get_running_loop()
    queued = [loop.create_future() for _ in range(3)]
    for fut in queued:
        session.mailbox.put_nowait(_Ask(lambda: "never run", fut))
    await session._finish(EndReason.STOPPED, "test")
    for fut in queued:
        with pytest.raises(SessionGone, match="ended"):
            fut.result()
    with pytest.raises(SessionGone):
        await session.ask(lambda: "too late")
    with pytest.raises(SessionGone):
        await session.prepared  # a start call waiting on it is answered too
    assert session.record.state == "ended" and session.record.end_reason == "stopped"
    assert events[-1][1]["state"] == "ended"
    assert Store(tmp_path / "sessions.db").get(session.id).state == "ended"  # the record is written


async def test_a_failure_reason_ends_the_session_as_failed(tmp_path: Path) -> None:
    session = Session(services(tmp_path, []), StartRequest(profile="echo", kind="echo"))
    await session._finish(EndReason.WORKER_CRASHED, "killed by SIGKILL")
    assert session.record.state == "failed" and session.record.error == "killed by SIGKILL"
    with pytest.raises(SessionGone, match="failed"):
        await session.ask(lambda: None)
