"""Run history and scheduler state on disk: ``<home>/jobs.db`` (sqlite, WAL, short connections).

One row per execution (status running -> completed | failed | regressed | cancelled) with its metrics,
paths, MLflow run and gate verdict; one row per job with the last due time the scheduler handled, so a
restarted scheduler knows what it already did.
"""
from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

STATUSES = ("running", "completed", "failed", "regressed", "cancelled")
FINAL = ("completed", "failed", "regressed", "cancelled")
SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled_for TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    duration_s REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    notebook TEXT,
    output_path TEXT,
    report_path TEXT,
    run_id TEXT,
    parameters TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}',
    stats TEXT NOT NULL DEFAULT '{}',
    gate TEXT,
    error TEXT,
    notebook_digest TEXT,
    git_commit TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS executions_job ON executions (job, id);
CREATE TABLE IF NOT EXISTS scheduler_state (
    job TEXT PRIMARY KEY,
    last_due TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""
_JSON = ("parameters", "metrics", "stats", "gate")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


@dataclass
class Execution:
    """One execution of a job, as stored in the history."""

    id: int
    job: str
    status: str
    trigger: str
    started_at: datetime
    scheduled_for: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    attempts: int = 0
    notebook: str | None = None
    output_path: str | None = None
    report_path: str | None = None
    run_id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # what the notebook recorded (last value per name)
    stats: dict[str, Any] = field(default_factory=dict)  # duration, batch latency/cost/rows, batch run ids
    gate: dict[str, Any] | None = None  # verdict: {"passed", "reason", "checks", "baseline"}
    error: str | None = None
    notebook_digest: str | None = None
    git_commit: str | None = None
    pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("started_at", "ended_at", "scheduled_for"):
            out[key] = iso(out[key])
        return out


class HistoryStore:
    """``jobs.db`` under the llmops home. Safe across processes (sqlite WAL + busy timeout)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    # -- executions ---------------------------------------------------------------------------------
    def start(self, job: str, trigger: str, parameters: dict[str, Any], notebook: str,
              scheduled_for: datetime | None = None, started_at: datetime | None = None) -> Execution:
        started_at = started_at or utcnow()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO executions (job, status, trigger, scheduled_for, started_at, notebook, parameters, pid)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
                (job, trigger, iso(scheduled_for), iso(started_at), notebook, json.dumps(parameters), os.getpid()))
            return self.get(cur.lastrowid, db)

    def update(self, execution: Execution) -> None:
        values = execution.to_dict()
        columns = [k for k in values if k not in ("id", "job")]
        row = [json.dumps(values[k]) if k in _JSON and values[k] is not None else values[k] for k in columns]
        with self._connect() as db:
            db.execute(f"UPDATE executions SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
                       (*row, execution.id))

    def get(self, execution_id: int, db: sqlite3.Connection | None = None) -> Execution:
        if db is None:
            with self._connect() as conn:
                return self.get(execution_id, conn)
        row = db.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchone()
        if row is None:
            raise KeyError(execution_id)
        return _execution(row)

    def history(self, job: str, limit: int | None = 20) -> list[Execution]:
        """Newest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM executions WHERE job = ? ORDER BY id DESC LIMIT ?",
                              (job, -1 if limit is None else limit)).fetchall()
        return [_execution(r) for r in rows]

    def latest(self, job: str, statuses: tuple[str, ...] = FINAL, before: int | None = None) -> Execution | None:
        marks = ", ".join("?" for _ in statuses)
        sql = f"SELECT * FROM executions WHERE job = ? AND status IN ({marks})"
        args: list[Any] = [job, *statuses]
        if before is not None:
            sql += " AND id < ?"
            args.append(before)
        with self._connect() as db:
            row = db.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _execution(row) if row is not None else None

    def find_by_run(self, run_id: str) -> Execution | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM executions WHERE run_id = ?", (run_id,)).fetchone()
        return _execution(row) if row is not None else None

    def running(self, job: str | None = None) -> list[Execution]:
        with self._connect() as db:
            if job is None:
                rows = db.execute("SELECT * FROM executions WHERE status = 'running'").fetchall()
            else:
                rows = db.execute("SELECT * FROM executions WHERE status = 'running' AND job = ?", (job,)).fetchall()
        return [_execution(r) for r in rows]

    # -- scheduler state ----------------------------------------------------------------------------
    def last_due(self, job: str) -> datetime | None:
        with self._connect() as db:
            row = db.execute("SELECT last_due FROM scheduler_state WHERE job = ?", (job,)).fetchone()
        return parse_iso(row["last_due"]) if row is not None else None

    def set_last_due(self, job: str, moment: datetime) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO scheduler_state (job, last_due, updated_at) VALUES (?, ?, ?) "
                       "ON CONFLICT(job) DO UPDATE SET last_due = excluded.last_due, updated_at = excluded.updated_at",
                       (job, iso(moment), iso(utcnow())))


def _execution(row: sqlite3.Row) -> Execution:
    values = dict(row)
    for key in _JSON:
        values[key] = json.loads(values[key]) if values[key] is not None else None
    values["metrics"] = values["metrics"] or {}
    values["stats"] = values["stats"] or {}
    values["parameters"] = values["parameters"] or {}
    for key in ("started_at", "ended_at", "scheduled_for"):
        values[key] = parse_iso(values[key])
    return Execution(**values)


def store_for(home: Path) -> HistoryStore:
    return HistoryStore(Path(home) / "jobs.db")
