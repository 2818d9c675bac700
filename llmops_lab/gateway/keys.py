"""API keys of the serve endpoint, in ``<home>/serve_keys.db`` (sqlite).

A key is 32 random bytes (``llk-`` + URL-safe base64), shown once at creation. Only its SHA-256 digest is
stored: a key is a high-entropy random token, not a password, so a slow hash (scrypt) would add 0.1 s to
every request and no security (nobody can guess 256 bits). Lookups compare digests, never keys.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from llmops_lab.exceptions import ConfigError

PREFIX = "llk-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SCHEMA = """
create table if not exists keys (
  digest text primary key, name text unique not null, prompts text not null, max_cost_day real,
  rpm integer, created_ms integer not null, revoked_ms integer)
"""


@dataclass(frozen=True)
class KeyInfo:
    """What a key may do; ``prompts`` empty means every prompt."""

    name: str
    prompts: tuple[str, ...] = ()
    max_cost_day: float | None = None
    rpm: int | None = None
    created_ms: int = 0
    revoked: bool = False
    digest: str = field(default="", repr=False)

    def allows(self, prompt_name: str) -> bool:
        return not self.prompts or prompt_name in self.prompts


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """``KeyStore(home).create("app", prompts=["summarize"], rpm=60)`` -> the key, once."""

    def __init__(self, home: Path):
        self.path = Path(home) / "serve_keys.db"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("pragma journal_mode=wal")
        db.execute(_SCHEMA)
        return db

    def create(self, name: str, *, prompts: list[str] | tuple[str, ...] = (), max_cost_day: float | None = None,
               rpm: int | None = None) -> str:
        if not _NAME.match(name or ""):
            raise ConfigError(f"key name {name!r} is invalid: use letters, digits, '.', '_' or '-' (at most 64)")
        if max_cost_day is not None and max_cost_day < 0:
            raise ConfigError("--max-cost-day must be 0 or more (USD per day)")
        if rpm is not None and rpm < 1:
            raise ConfigError("--rpm must be 1 or more (requests per minute)")
        key = PREFIX + secrets.token_urlsafe(32)
        with self._connect() as db:
            if db.execute("select 1 from keys where name = ?", (name,)).fetchone():
                raise ConfigError(f"a key named {name!r} exists already: revoke it first, or choose another name")
            db.execute("insert into keys values (?, ?, ?, ?, ?, ?, null)",
                       (digest(key), name, json.dumps(sorted(set(prompts))), max_cost_day, rpm,
                        int(time.time() * 1000)))
        return key

    def lookup(self, key: str) -> KeyInfo | None:
        """The key's rights, or None for an unknown or revoked key."""
        if not key.startswith(PREFIX) or not self.path.exists():
            return None
        with self._connect() as db:
            row = db.execute("select * from keys where digest = ? and revoked_ms is null", (digest(key),)).fetchone()
        return _info(row) if row else None

    def list(self) -> list[KeyInfo]:
        if not self.path.exists():
            return []
        with self._connect() as db:
            return [_info(row) for row in db.execute("select * from keys order by created_ms")]

    def revoke(self, name: str) -> None:
        with self._connect() as db:
            done = db.execute("update keys set revoked_ms = ? where name = ? and revoked_ms is null",
                              (int(time.time() * 1000), name)).rowcount
        if not done:
            known = ", ".join(k.name for k in self.list() if not k.revoked) or "none"
            raise ConfigError(f"no active key named {name!r} (active keys: {known})")


def _info(row: tuple) -> KeyInfo:
    key_digest, name, prompts, max_cost_day, rpm, created_ms, revoked_ms = row
    return KeyInfo(name, tuple(json.loads(prompts)), max_cost_day, rpm, created_ms, revoked_ms is not None,
                   key_digest)
