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
"""


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
