"""Session records in SQLite (``run_dir/sessions.db``, WAL): one row per session,
written at every state change, so history survives restarts and a crashed daemon's
unfinished sessions can be found and reconciled on the next start."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec


class SessionRecord(msgspec.Struct, kw_only=True):
    """What is kept about a session. Timestamps are Unix seconds (float) or None."""

    id: str
    state: str
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
    failovers: int = 0
    failover_gap_ms: float = 0.0
    max_duration_s: int = 7200
    extra: dict[str, Any] = {}

    @property
    def finished(self) -> bool:
        return self.state in ("ended", "failed")


_COLUMNS = [f for f in SessionRecord.__struct_fields__]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    {", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'id' else ''}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE INDEX IF NOT EXISTS sessions_requested ON sessions(requested_at);
CREATE TABLE IF NOT EXISTS pooled_rooms (name TEXT PRIMARY KEY, created_at REAL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def save(self, record: SessionRecord) -> None:
        """Insert or replace the row for ``record`` (one statement, durable in WAL)."""
        values = [_to_column(getattr(record, c)) for c in _COLUMNS]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        self.db.execute(f"INSERT OR REPLACE INTO sessions ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values)

    def get(self, session_id: str) -> SessionRecord | None:
        row = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _from_row(row) if row else None

    def recent(self, limit: int = 100, state: str | None = None) -> list[SessionRecord]:
        query = f"SELECT {', '.join(_COLUMNS)} FROM sessions"
        args: list[Any] = []
        if state:
            query += " WHERE state = ?"
            args.append(state)
        query += " ORDER BY requested_at DESC LIMIT ?"
        args.append(limit)
        return [_from_row(r) for r in self.db.execute(query, args).fetchall()]

    def unfinished(self) -> list[SessionRecord]:
        rows = self.db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM sessions WHERE state NOT IN ('ended', 'failed')"
        ).fetchall()
        return [_from_row(r) for r in rows]

    def remember_pooled_room(self, name: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO pooled_rooms (name, created_at) VALUES (?, strftime('%s','now'))",
                        (name,))

    def forget_pooled_room(self, name: str) -> None:
        self.db.execute("DELETE FROM pooled_rooms WHERE name = ?", (name,))

    def pooled_rooms(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM pooled_rooms").fetchall()]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def _to_column(value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _from_row(row: tuple[Any, ...]) -> SessionRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["extra"] = json.loads(data["extra"]) if data["extra"] else {}
    data["room_created"] = bool(data["room_created"])
    return msgspec.convert(data, SessionRecord)
