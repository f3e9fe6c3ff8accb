"""Session logs: what sessions.db keeps of each session's lines (per-session and total caps,
the markers that say what is missing, surviving a reopen), how a worker batches and bounds
what it ships, and how the supervisor files a worker's lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.messages import LogLines
from supervisor import session_logs
from supervisor.config import LogsSection
from supervisor.session_logs import SessionLogs, with_session
from supervisor.store import Store
from tests.waiting import wait_until
from worker import log_shipping
from worker.log_shipping import LogShipper, batches


def line(session_id: str, n: int, pad: int = 0) -> str:
    return json.dumps({"event": f"line {n}", "session_id": session_id, "pad": "x" * pad})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "sessions.db")
    yield s
    s.close()


def book(store: Store, live: set[str] | None = None, **caps: int) -> SessionLogs:
    return SessionLogs(store, LogsSection(**caps), lambda sid: sid in (live or set()))


def events(lines: list[tuple[int, str]]) -> list[str]:
    return [json.loads(text)["event"] for _, text in lines]


def test_lines_are_kept_in_order_with_their_seq(store: Store) -> None:
    store.append_logs("s1", [line("s1", 0), line("s1", 1)], 100, 100_000, now=1.0)
    store.append_logs("s1", [line("s1", 2)], 100, 100_000, now=2.0)
    store.append_logs("s2", [line("s2", 0)], 100, 100_000, now=2.0)
    assert [seq for seq, _ in store.logs("s1")] == [0, 1, 2]
    assert [json.loads(text)["event"] for _, text in store.logs("s1")] == ["line 0", "line 1", "line 2"]
    assert [seq for seq, _ in store.logs("s1", after=0)] == [1, 2]
    assert [seq for seq, _ in store.logs("s1", tail=2)] == [1, 2]
    assert [json.loads(text)["session_id"] for _, text in store.logs("s2")] == ["s2"]


def test_per_session_line_cap_drops_the_oldest_and_a_marker_says_how_many(store: Store) -> None:
    logs = book(store, max_lines_per_session=10)
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", n) for n in range(25)]))
    read = logs.read("s1")
    assert read[0][0] == -1
    first = json.loads(read[0][1])
    assert first["dropped"] == 15 and first["session_id"] == "s1" and first["level"] == "warning"
    assert "15 earlier lines dropped" in first["event"]
    assert events(read[1:]) == [f"line {n}" for n in range(15, 25)]
    assert store.log_size("s1").lines == 10


def test_per_session_byte_cap_drops_the_oldest(store: Store) -> None:
    logs = book(store, max_bytes_per_session=10_000)
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", n, pad=900) for n in range(30)]))
    logs.flush()
    size = store.log_size("s1")
    assert size.bytes <= 10_000 and size.lines == 10  # each line is a little under 1,000 characters
    assert size.dropped == 20
    assert events(logs.read("s1")[1:]) == [f"line {n}" for n in range(20, 30)]


def test_a_tail_within_the_kept_lines_has_no_marker(store: Store) -> None:
    logs = book(store, max_lines_per_session=10)
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", n) for n in range(25)]))
    assert events(logs.read("s1", tail=3)) == ["line 22", "line 23", "line 24"]


def test_total_cap_prunes_the_sessions_logged_to_longest_ago_but_never_a_live_one(store: Store) -> None:
    for n, sid in enumerate(["old-live", "old", "middle", "new"]):
        store.append_logs(sid, [line(sid, 0, pad=400_000)], 2000, 1_000_000, now=float(n))
    logs = book(store, max_total_bytes=1_000_000)
    assert logs.prune({"old-live"}) == ["old", "middle"]
    assert store.logs("old") == [] and store.log_size("old").pruned
    assert len(store.logs("old-live")) == 1 and len(store.logs("new")) == 1
    pruned = json.loads(logs.read("old")[0][1])
    assert pruned["pruned"] is True and "pruned" in pruned["event"]


def test_logs_survive_reopening_the_store(tmp_path: Path) -> None:
    first = Store(tmp_path / "sessions.db")
    first.append_logs("s1", [line("s1", n) for n in range(3)], 100, 100_000, now=1.0)
    first.close()
    again = Store(tmp_path / "sessions.db")
    try:
        assert [json.loads(text)["event"] for _, text in again.logs("s1")] == ["line 0", "line 1", "line 2"]
        assert again.append_logs("s1", [line("s1", 3)], 100, 100_000, now=2.0) == 3  # numbering goes on
    finally:
        again.close()


def test_a_worker_line_with_no_session_bound_gets_the_hosted_session(store: Store) -> None:
    logs = book(store)
    untagged = json.dumps({"event": "joined", "worker_id": "w1"})
    logs.from_worker("s1", LogLines(session_id="", lines=[untagged]))
    kept = json.loads(logs.read("s1")[0][1])
    assert kept == {"session_id": "s1", "event": "joined", "worker_id": "w1"}
    assert with_session("not json", "s1") == "not json"


def test_lines_the_worker_dropped_leave_a_marker_where_they_were(store: Store) -> None:
    logs = book(store)
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 0)]))
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 1)], dropped=7))
    read = events(logs.read("s1"))
    assert read == ["line 0", "7 lines dropped by the worker: the supervisor read too slowly", "line 1"]


def test_lines_past_the_write_buffer_leave_a_marker_saying_how_many(store: Store,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_logs, "MAX_PENDING_LINES", 3)
    logs = book(store)
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 0), line("s1", 1)]))
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 2), line("s1", 3)]))  # no room
    logs.flush()
    logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 4)]))
    assert events(logs.read("s1")) == ["line 0", "line 1", "2 lines not kept: sessions.db fell behind", "line 4"]


def test_the_supervisors_own_lines_are_kept_only_for_live_sessions(store: Store) -> None:
    logs = book(store, live={"s1"})
    logs.take("s1", line("s1", 0))
    logs.take("gone", line("gone", 0))
    logs.take("", json.dumps({"event": "no session"}))
    assert events(logs.read("s1")) == ["line 0"]
    assert logs.read("gone") == []


def test_followers_get_each_line_as_it_is_written(store: Store) -> None:
    logs = book(store)
    with logs.follow("s1") as follower:
        logs.from_worker("s1", LogLines(session_id="s1", lines=[line("s1", 0), line("s1", 1)]))
        logs.from_worker("s2", LogLines(session_id="s2", lines=[line("s2", 0)]))
        logs.flush()
        assert [seq for seq, _ in follower.lines] == [0, 1]
    assert logs._followers == {}


def test_worker_batches_follow_the_sessions_in_order_and_carry_the_drop_count() -> None:
    lines = [("", "a"), ("s1", "b"), ("s1", "c"), ("", "d")]
    out = batches(lines, dropped=3)
    assert [(b.session_id, b.lines) for b in out] == [("", ["a"]), ("s1", ["b", "c"]), ("", ["d"])]
    assert [b.dropped for b in out] == [3, 0, 0]
    assert [(b.session_id, b.lines, b.dropped) for b in batches([], dropped=2)] == [("", [], 2)]
    many = batches([("s1", str(n)) for n in range(log_shipping.MAX_BATCH_LINES + 1)], dropped=0)
    assert [len(b.lines) for b in many] == [log_shipping.MAX_BATCH_LINES, 1]


def test_worker_buffer_is_bounded_and_counts_what_it_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_shipping, "MAX_BUFFERED_LINES", 3)
    sent: list[LogLines] = []
    shipper = LogShipper(sent.append, lambda: 0)  # type: ignore[arg-type]
    for n in range(5):
        shipper.take("s1", f"line {n}")
    shipper.flush()
    assert [(b.lines, b.dropped) for b in sent] == [(["line 0", "line 1", "line 2"], 2)]
    shipper.take("s1", "line 5")  # room again once shipped
    shipper.flush()
    assert sent[-1].lines == ["line 5"] and sent[-1].dropped == 0


async def test_the_shipper_sleeps_until_a_line_comes_and_ships_lines_from_any_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_shipping, "FLUSH_INTERVAL_S", 0.01)
    sent: list[LogLines] = []
    shipper = LogShipper(sent.append, lambda: 0)  # type: ignore[arg-type]
    task = asyncio.create_task(shipper.run())
    try:
        await asyncio.sleep(0.1)
        assert sent == []  # nothing logged: nothing sent
        await asyncio.to_thread(shipper.take, "s1", "from a thread")
        await wait_until(lambda: sent, 5, "the thread's line shipped")
        shipper.take("s1", "from the loop")
        await wait_until(lambda: len(sent) == 2, 5, "the loop's line shipped")
        assert [b.lines for b in sent] == [["from a thread"], ["from the loop"]]
    finally:
        task.cancel()
