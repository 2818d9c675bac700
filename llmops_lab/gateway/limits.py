"""Per-key limits held by one server process: requests per minute (a sliding window) and the day's spend.

Each worker process counts its own requests, so with N workers a key's effective rate limit is up to N times
its ``rpm`` (documented in the README); the day's spend is read from and added to the key store's sqlite
file, so the budget holds across workers and restarts.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

WINDOW_S = 60.0


def _today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def seconds_to_midnight_utc() -> int:
    now = datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class Limits:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def rate_wait(self, name: str, rpm: int | None) -> float | None:
        """None if the request may go now (and counts it); else the seconds until it may."""
        if not rpm:
            return None
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(name, deque())
            while window and now - window[0] >= WINDOW_S:
                window.popleft()
            if len(window) >= rpm:
                return WINDOW_S - (now - window[0])
            window.append(now)
        return None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=10)
        db.execute("create table if not exists spend (name text, day text, usd real, primary key (name, day))")
        return db

    def spent_today(self, name: str) -> float:
        with self._connect() as db:
            row = db.execute("select usd from spend where name = ? and day = ?", (name, _today())).fetchone()
        return float(row[0]) if row else 0.0

    def add_spend(self, name: str, usd: float | None) -> None:
        if not usd:
            return
        with self._connect() as db:
            db.execute("insert into spend values (?, ?, ?) on conflict (name, day) do update set usd = usd + ?",
                       (name, _today(), usd, usd))
