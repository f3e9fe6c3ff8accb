"""Session records in SQLite (``run_dir/sessions.db``, WAL): one row per session,
written at every state change, so history survives restarts and a crashed daemon's
unfinished sessions can be found and reconciled on the next start."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

import msgspec

from supervisor.sessions.state import FINISHED, SessionState


class SessionRecord(msgspec.Struct, kw_only=True):
    """What is kept about a session. Timestamps are Unix seconds (float) or None."""

    id: str
    state: SessionState
    profile: str
    kind: str
    room_url: str | None = None
    room_name: str | None = None
    room_created: bool = False
    worker_id: str | None = None
    worker_pid: int | None = None
    requested_at: float | None = None
    assigned_at: float | None = None
    joined_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    error: str | None = None
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    worker_frames_out: int = 0
    worker_frames_dropped: int = 0
    failovers: int = 0
    failover_gap_ms: float = 0.0
    max_duration_s: int = 7200
    extra: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.state.finished


_COLUMNS = [f for f in SessionRecord.__struct_fields__]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    {", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'id' else ''}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE INDEX IF NOT EXISTS sessions_requested ON sessions(requested_at);
CREATE TABLE IF NOT EXISTS pooled_rooms (name TEXT PRIMARY KEY, created_at REAL);
CREATE TABLE IF NOT EXISTS owned_rooms (name TEXT PRIMARY KEY, created_at REAL);
CREATE TABLE IF NOT EXISTS session_logs (session_id TEXT, seq INTEGER, line TEXT, PRIMARY KEY (session_id, seq));
CREATE TABLE IF NOT EXISTS session_log_sizes (
    session_id TEXT PRIMARY KEY, lines INTEGER, bytes INTEGER, next_seq INTEGER, dropped INTEGER,
    pruned INTEGER, updated_at REAL
);
CREATE INDEX IF NOT EXISTS session_log_sizes_updated ON session_log_sizes(updated_at);
"""


class LogSize(msgspec.Struct, frozen=True):
    """What is kept of one session's log: ``dropped`` lines went to the per-session cap,
    ``pruned`` is the whole log gone to the total cap; ``next_seq`` numbers the next line."""

    lines: int = 0
    bytes: int = 0
    next_seq: int = 0
    dropped: int = 0
    pruned: bool = False


class LedgerMirror(Protocol):
    """Told of every ledger change (cluster mode: so a survivor can delete a dead node's rooms)."""

    def room_remembered(self, name: str) -> None: ...
    def room_forgotten(self, name: str) -> None: ...


class Store:
    mirror: LedgerMirror | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._add_new_columns()

    def _add_new_columns(self) -> None:
        # A store written by an older version lacks the record's newer fields.
        have = {row[1] for row in self.db.execute("PRAGMA table_info(sessions)")}
        for column in _COLUMNS:
            if column not in have:
                self.db.execute(f"ALTER TABLE sessions ADD COLUMN {column}")

    def save(self, record: SessionRecord) -> None:
        """Insert or replace the row for ``record`` (one statement, durable in WAL)."""
        values = [_to_column(getattr(record, c)) for c in _COLUMNS]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        self.db.execute(f"INSERT OR REPLACE INTO sessions ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values)

    def get(self, session_id: str) -> SessionRecord | None:
        row = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _from_row(row) if row else None

    def recent(self, limit: int = 100, state: SessionState | None = None) -> list[SessionRecord]:
        query = f"SELECT {', '.join(_COLUMNS)} FROM sessions"
        args: list[Any] = []
        if state:
            query += " WHERE state = ?"
            args.append(state.value)
        query += " ORDER BY requested_at DESC LIMIT ?"
        args.append(limit)
        return [_from_row(r) for r in self.db.execute(query, args).fetchall()]

    def unfinished(self) -> list[SessionRecord]:
        done = ", ".join("?" for _ in FINISHED)
        rows = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE state NOT IN ({done})",
                               [s.value for s in FINISHED]).fetchall()
        return [_from_row(r) for r in rows]

    # -- the room ledger -------------------------------------------------------------------
    # Every room the supervisor creates (pooled or per session) is written here before the
    # create call and removed only once Daily confirms it is gone, so a room whose delete
    # could not finish -- a crash, Daily unreachable at shutdown -- is deleted at next start.

    def remember_room(self, name: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO owned_rooms (name, created_at) VALUES (?, strftime('%s','now'))",
                        (name,))
        if self.mirror is not None:
            self.mirror.room_remembered(name)

    def forget_room(self, name: str) -> None:
        self.db.execute("DELETE FROM owned_rooms WHERE name = ?", (name,))
        self.db.execute("DELETE FROM pooled_rooms WHERE name = ?", (name,))
        if self.mirror is not None:
            self.mirror.room_forgotten(name)

    def owned_rooms(self) -> list[str]:
        # pooled_rooms is the ledger's name before 0.2: rooms a previous version pooled count too.
        rows = self.db.execute("SELECT name FROM owned_rooms UNION SELECT name FROM pooled_rooms").fetchall()
        return [row[0] for row in rows]

    # -- session logs --------------------------------------------------------------------------
    # Each session's lines in order (seq from 0), capped per session and in all; the caps are
    # applied as lines are written, so what is read is always within them.

    def append_logs(self, session_id: str, lines: list[str], max_lines: int, max_bytes: int, now: float) -> int:
        """Add ``lines`` to the session's log, dropping its oldest past the per-session caps
        (a line over the byte cap on its own is dropped at once); returns the seq of the first."""
        with self.db:
            self.db.execute("BEGIN")  # one transaction per batch (the connection autocommits otherwise)
            size = self.log_size(session_id)
            first = size.next_seq
            self.db.executemany("INSERT INTO session_logs (session_id, seq, line) VALUES (?, ?, ?)",
                                [(session_id, first + i, line) for i, line in enumerate(lines)])
            count, total = size.lines + len(lines), size.bytes + sum(len(line) for line in lines)
            dropped = size.dropped
            if count > max_lines or total > max_bytes:
                cut, gone, gone_bytes = self._log_cut(session_id, count, total, max_lines, max_bytes)
                self.db.execute("DELETE FROM session_logs WHERE session_id = ? AND seq < ?", (session_id, cut))
                count, total, dropped = count - gone, total - gone_bytes, dropped + gone
            self.db.execute("INSERT OR REPLACE INTO session_log_sizes (session_id, lines, bytes, next_seq, dropped, "
                            "pruned, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                            (session_id, count, total, first + len(lines), dropped, now))
        return first

    def _log_cut(self, session_id: str, count: int, total: int, max_lines: int,
                 max_bytes: int) -> tuple[int, int, int]:
        """The first seq kept so that the log fits its caps, how many lines and bytes go."""
        gone = gone_bytes = 0
        cut = 0
        for seq, length in self.db.execute("SELECT seq, length(line) FROM session_logs WHERE session_id = ? "
                                           "ORDER BY seq", (session_id,)):
            if count - gone <= max_lines and total - gone_bytes <= max_bytes:
                return seq, gone, gone_bytes
            gone, gone_bytes, cut = gone + 1, gone_bytes + length, seq + 1
        return cut, gone, gone_bytes

    def log_size(self, session_id: str) -> LogSize:
        row = self.db.execute("SELECT lines, bytes, next_seq, dropped, pruned FROM session_log_sizes "
                              "WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            return LogSize()
        return LogSize(lines=row[0], bytes=row[1], next_seq=row[2], dropped=row[3], pruned=bool(row[4]))

    def logs(self, session_id: str, *, after: int = -1, tail: int | None = None) -> list[tuple[int, str]]:
        """The session's kept lines with their seq, in order: those after seq ``after``, or
        the last ``tail`` of them."""
        if tail is not None:
            rows = self.db.execute("SELECT seq, line FROM session_logs WHERE session_id = ? AND seq > ? "
                                   "ORDER BY seq DESC LIMIT ?", (session_id, after, tail)).fetchall()
            rows.reverse()
        else:
            rows = self.db.execute("SELECT seq, line FROM session_logs WHERE session_id = ? AND seq > ? "
                                   "ORDER BY seq", (session_id, after)).fetchall()
        return [(int(seq), str(line)) for seq, line in rows]

    def logs_total_bytes(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(bytes), 0) FROM session_log_sizes").fetchone()[0])

    def prune_logs(self, max_total_bytes: int, keep: set[str]) -> list[str]:
        """Delete whole logs, the sessions logged to longest ago first (never those in
        ``keep``: the live ones), until all fit in ``max_total_bytes``; returns whose went."""
        total = self.logs_total_bytes()
        pruned: list[str] = []
        if total <= max_total_bytes:
            return pruned
        with self.db:
            self.db.execute("BEGIN")
            for session_id, size in self.db.execute("SELECT session_id, bytes FROM session_log_sizes WHERE pruned = 0 "
                                                    "ORDER BY updated_at").fetchall():
                if total <= max_total_bytes:
                    break
                if session_id in keep:
                    continue
                self.db.execute("DELETE FROM session_logs WHERE session_id = ?", (session_id,))
                self.db.execute("UPDATE session_log_sizes SET lines = 0, bytes = 0, pruned = 1 WHERE session_id = ?",
                                (session_id,))
                total -= size
                pruned.append(session_id)
        return pruned

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def _to_column(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, SessionState):
        return value.value
    return value


def _from_row(row: tuple[Any, ...]) -> SessionRecord:
    # NULL is "not set" (and the value of a column added after the row was written).
    data = {k: v for k, v in zip(_COLUMNS, row, strict=True) if v is not None}
    data["extra"] = json.loads(data["extra"]) if data.get("extra") else {}
    data["room_created"] = bool(data.get("room_created"))
    return msgspec.convert(data, SessionRecord)
