"""The response cache for batch evaluation: sqlite at ``.llmops/cache.db``, keyed by what is sent.

>>> key = cache_key("openai", None, "gpt-4o-mini", {"temperature": 0}, [{"role": "user", "content": "Hi"}])
>>> with ResponseCache(tmp / "cache.db") as cache:                       # doctest: +SKIP
...     cache.put(key, CachedResponse("Hello!", 8, 2, "stop", "gpt-4o-mini", 412.0))
...     cache.get(key).text
'Hello!'

Only successful responses are cached: :meth:`ResponseCache.put` takes a :class:`CachedResponse`
(built from a provider's :class:`~llmops_lab.providers.base.Completion`), never an error, so a failed
or rate-limited call is retried on the next run. Keys hash exactly what is sent (before the log-side
redaction), so masking never merges two different prompts; the text stored is what the caller passes
(the runner applies the log-side redaction first, docs/architecture.md). With ``LLMOPS_DATA_KEY`` set, the
content columns (``text``, ``tokens``) are encrypted (:mod:`llmops_lab.trust.at_rest`); a row that does not
decrypt is a miss.

Durability: the database is in WAL mode with ``synchronous=NORMAL``. A commit is appended to the WAL
file before :meth:`put` returns, so it survives the process being killed (a notebook kernel killed
mid-batch and re-run does not repeat paid calls); it is not fsync'ed on every commit, so the last
commits can be lost on power loss or an OS crash, which only costs repeated calls. Several threads
and several processes (a batch in a notebook and a scheduled job) may read and write at once.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from llmops_lab.exceptions import ConfigError
from llmops_lab.trust import at_rest

if TYPE_CHECKING:
    from llmops_lab.providers.base import Completion, ModelId

KEY_VERSION = 1  # bump when the canonical form changes: old entries then simply stop matching
BUSY_TIMEOUT_MS = 30_000  # a writer in another process holds the lock for milliseconds, not seconds
_CHUNK = 500  # keys per IN (...) query: far under sqlite's variable limit (999 before 3.32, 32766 after)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    response_model TEXT,
    latency_ms REAL NOT NULL,
    created_at REAL NOT NULL,
    tokens TEXT
)
"""
# A rowid table (not WITHOUT ROWID): its key index holds only keys, so lookups stay fast when answers are
# long; measured 3.5 ms vs 5.2 ms for 2,000 keys with 300-character answers.
_COLUMNS = "text, prompt_tokens, completion_tokens, finish_reason, response_model, latency_ms, created_at, tokens"
_INSERT = f"INSERT OR REPLACE INTO responses (key, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def cache_key(provider: str, endpoint: str | None, model: str, params: Mapping[str, Any],
              messages: list[dict[str, Any]]) -> str:
    """sha256 (hex) of the canonical JSON of exactly what is sent; ``None`` params are dropped.

    >>> a = cache_key("openai", None, "gpt-4o-mini", {"temperature": 0, "seed": None, "top_p": 1},
    ...               [{"role": "user", "content": "Hi"}])
    >>> a == cache_key("openai", None, "gpt-4o-mini", {"top_p": 1, "temperature": 0},
    ...                [{"content": "Hi", "role": "user"}])
    True

    Values are compared as JSON: ``0`` and ``0.0`` differ, so pass params through
    :func:`llmops_lab.config.validate_params` (which fixes their types) before hashing.
    """
    payload = {
        "v": KEY_VERSION,
        "provider": provider,
        "endpoint": endpoint,
        "model": model,
        "params": {str(k): v for k, v in params.items() if v is not None},
        "messages": messages,
    }
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"cannot build a cache key: params and messages must be plain JSON values ({err})") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedResponse:
    """A successful answer as stored; ``latency_ms`` is the original call's, ``created_at`` epoch seconds.

    ``tokens``: for a logprobs request (``logprobs`` is in the params, hence in the key), the token
    logprobs as JSON (:func:`llmops_lab.core.explain.tokens_to_json`), masked with the log policy like ``text``;
    None otherwise, or when the endpoint returned none.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    response_model: str | None = None
    latency_ms: float = 0.0
    created_at: float = field(default_factory=time.time)
    tokens: str | None = None

    @classmethod
    def _from_row(cls, row: Iterable[Any]) -> "CachedResponse":
        # Like unpickling: fills the fields without the frozen __init__ (3x faster for get_many of 2,000).
        obj = object.__new__(cls)
        obj.__dict__.update(zip(_FIELDS, row))
        return obj

    @classmethod
    def from_completion(cls, completion: "Completion") -> "CachedResponse":
        """What to store for a provider's answer, e.g. ``cache.put(key, CachedResponse.from_completion(c))``."""
        return cls(completion.text, completion.usage.prompt_tokens, completion.usage.completion_tokens,
                   completion.finish_reason, completion.response_model, float(completion.latency_ms))

    def to_completion(self, model_id: "ModelId", endpoint_host: str | None = None) -> "Completion":
        """A Completion for a cache hit: ``latency_ms`` 0 (no call was made), the original in ``extra``.

        >>> hit.to_completion(ModelId.parse("openai:gpt-4o-mini")).extra["cached"]   # doctest: +SKIP
        True
        """
        from llmops_lab.providers.base import Completion, Usage

        tokens = None
        if self.tokens is not None:
            from llmops_lab.core.explain import tokens_from_json

            tokens = tokens_from_json(self.tokens)
        return Completion(self.text, model_id, Usage(self.prompt_tokens, self.completion_tokens), 0.0,
                          finish_reason=self.finish_reason, endpoint_host=endpoint_host,
                          response_model=self.response_model,
                          extra={"cached": True, "cached_latency_ms": self.latency_ms,
                                 "cached_at": self.created_at}, tokens=tokens)


_FIELDS = tuple(f.name for f in fields(CachedResponse))


def _row(key: str, value: CachedResponse) -> tuple:
    if not isinstance(value, CachedResponse):
        raise TypeError(f"the cache stores CachedResponse values (successful answers only), not {type(value).__name__}")
    return (key, value.text, int(value.prompt_tokens), int(value.completion_tokens), value.finish_reason,
            value.response_model, float(value.latency_ms), float(value.created_at), value.tokens)


# -- encryption at rest of the content columns (text, tokens) with LLMOPS_DATA_KEY: trust/at_rest.py ----------

_SEALED = at_rest.PREFIX


def _seal_content(rows: list[tuple]) -> list[tuple]:
    """Rows to insert (``_row``), with ``text`` and ``tokens`` encrypted and bound to their cache key when
    LLMOPS_DATA_KEY is set; unchanged otherwise (one environment lookup per write)."""
    if at_rest.current_key() is None:
        return rows
    sealed = []
    for key, text, *middle, tokens in rows:
        context = key.encode("ascii")
        sealed.append((key, at_rest.seal(text, context), *middle,
                       None if tokens is None else at_rest.seal(tokens, context)))
    return sealed


def _open_row(key: str, row: tuple) -> tuple | None:
    """A stored row (``_COLUMNS`` order) with its content decrypted; None, a miss, when it does not decrypt
    (no key, another key): the call is made again, never a batch error. Plaintext rows pass unchanged."""
    text, tokens = row[0], row[7]
    if not text.startswith(_SEALED) and not (tokens and tokens.startswith(_SEALED)):  # the hot path: one check
        return row
    context = key.encode("ascii")
    text = at_rest.open_or_none(text, context, "a cached answer")
    if text is None:
        return None
    if tokens is not None:
        tokens = at_rest.open_or_none(tokens, context, "a cached answer")
        if tokens is None:
            return None
    return (text, *row[1:7], tokens)


class ResponseCache:
    """A thread- and process-safe response cache in one sqlite file.

    >>> cache = ResponseCache(settings.home / "cache.db")                      # doctest: +SKIP
    >>> hits = cache.get_many(keys)          # {key: CachedResponse} for the keys present  # doctest: +SKIP
    >>> cache.put_many((k, CachedResponse.from_completion(c)) for k, c in fresh.items())  # doctest: +SKIP

    One connection shared by all threads behind a lock: sqlite serialises writers anyway, and measured
    on 2 cores it is as fast or faster than a connection per thread (8 threads mixing get_many and
    put_many: 440-590 ms vs 460-820 ms; no per-thread open and schema check). ``close()`` releases
    the connection; the next use reopens it.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._connection()  # open now: an unreadable file fails here, with a clear message

    @classmethod
    def default(cls) -> "ResponseCache":
        """The project's cache, ``<settings.home>/cache.db``."""
        from llmops_lab.config import get_settings

        return cls(get_settings().home / "cache.db")

    # -- connection ------------------------------------------------------------------------------

    def _unreadable(self, err: Exception) -> ConfigError:
        return ConfigError(f"the response cache {self.path} is unreadable ({err}): delete it (and its -wal and "
                           "-shm files) to start an empty cache")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the folder of the response cache {self.path}: {err}") from None
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._journal_wal(conn)
            # NORMAL in WAL mode: durable against a killed process, not against power loss (see module doc).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            self._add_tokens_column(conn)
            conn.execute("SELECT 1 FROM responses LIMIT 1").fetchall()
        except sqlite3.DatabaseError as err:
            if conn is not None:
                conn.close()
            if _is_damage(err):
                raise self._unreadable(err) from None
            raise
        self._conn = conn
        return conn

    @staticmethod
    def _add_tokens_column(conn: sqlite3.Connection) -> None:
        # A cache created before logprobs existed: add the (nullable) column; old rows keep working. Another
        # process may add it at the same moment: "duplicate column" then means done.
        if any(row[1] == "tokens" for row in conn.execute("PRAGMA table_info(responses)")):
            return
        try:
            conn.execute("ALTER TABLE responses ADD COLUMN tokens TEXT")
        except sqlite3.OperationalError as err:
            if "duplicate column" not in str(err).lower():
                raise

    @staticmethod
    def _journal_wal(conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs a moment of exclusive access; another process doing the
        # same can make it report "locked" without going through the busy handler: retry briefly.
        for attempt in range(100):
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise
            time.sleep(0.01 * min(attempt + 1, 10))
        raise sqlite3.OperationalError("could not switch the database to WAL mode (database is locked)")

    def _run(self, fn):
        """Run ``fn(conn)`` under the lock; a damaged file becomes a one-line ConfigError."""
        with self._lock:
            conn = self._connection()
            try:
                return fn(conn)
            except BaseException as err:
                if conn.in_transaction:  # also on KeyboardInterrupt: never leave the write lock held
                    try:
                        conn.rollback()
                    except sqlite3.Error:
                        pass
                if _is_damage(err):
                    raise self._unreadable(err) from None
                raise

    # -- API -------------------------------------------------------------------------------------

    def get(self, key: str) -> CachedResponse | None:
        """The stored answer for ``key``, or None."""
        row = self._run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM responses WHERE key = ?", (key,)).fetchone())
        row = None if row is None else _open_row(key, row)
        return None if row is None else CachedResponse._from_row(row)

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedResponse]:
        """``{key: answer}`` for those of ``keys`` that are stored (one query per 500 keys)."""
        unique = list(dict.fromkeys(keys))

        def query(conn: sqlite3.Connection) -> dict[str, CachedResponse]:
            found: dict[str, CachedResponse] = {}
            make = CachedResponse._from_row
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                sql = f"SELECT key, {_COLUMNS} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                for row in conn.execute(sql, chunk):
                    content = _open_row(row[0], row[1:])
                    if content is not None:
                        found[row[0]] = make(content)
            return found

        return self._run(query) if unique else {}

    def put(self, key: str, value: CachedResponse) -> None:
        """Store a successful answer; committed (durable against a process kill) when this returns."""
        row = _seal_content([_row(key, value)])[0]
        self._run(lambda c: c.execute(_INSERT, row))

    def put_many(self, items: Iterable[tuple[str, CachedResponse]] | Mapping[str, CachedResponse]) -> int:
        """Store many answers in one transaction; returns how many. Committed when this returns."""
        pairs = items.items() if isinstance(items, Mapping) else items
        rows = _seal_content([_row(key, value) for key, value in pairs])
        if not rows:
            return 0

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: waits in the busy handler
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")

        self._run(write)
        return len(rows)

    def __len__(self) -> int:
        return self._run(lambda c: c.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def clear(self) -> None:
        """Delete every stored answer."""
        self._run(lambda c: c.execute("DELETE FROM responses"))

    def close(self) -> None:
        """Release the connection (the next call reopens it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __bool__(self) -> bool:  # an empty cache is still a cache (``cache or default`` must not replace it)
        return True

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    # -- erasure and retention (jobs/erasure.py, jobs/retention.py) -----------------------------------

    def entries(self) -> Iterator[tuple[str, CachedResponse]]:
        """Every stored ``(key, answer)``, read 500 rows at a time (forget matches answers by their text)."""
        last = 0
        while True:
            rows = self._run(lambda c, after=last: c.execute(
                f"SELECT rowid, key, {_COLUMNS} FROM responses WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, _CHUNK)).fetchall())
            if not rows:
                return
            for row in rows:
                content = row[2:]
                if content[0].startswith(_SEALED) or (content[7] or "").startswith(_SEALED):
                    # Sealed with LLMOPS_DATA_KEY: matched decrypted; without the key, DataKeyError (one line)
                    # rather than an erasure that silently skips what it cannot read.
                    context = row[1].encode("ascii")
                    text = at_rest.open_text(content[0], context, "a cached answer")
                    tokens = None if content[7] is None else at_rest.open_text(content[7], context, "a cached answer")
                    content = (text, *content[1:7], tokens)
                yield row[1], CachedResponse._from_row(content)
            last = rows[-1][0]

    def keys_created_before(self, cutoff: float) -> list[str]:
        """Keys of the answers stored before ``cutoff`` (epoch seconds): what a retention limit removes."""
        return [row[0] for row in self._run(lambda c: c.execute(
            "SELECT key FROM responses WHERE created_at < ?", (float(cutoff),)).fetchall())]

    def delete(self, keys: Iterable[str]) -> int:
        """Delete these keys' answers in one transaction; returns how many rows went."""
        unique = list(dict.fromkeys(keys))

        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            gone = 0
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                gone += conn.execute(f"DELETE FROM responses WHERE key IN ({','.join('?' * len(chunk))})",
                                     chunk).rowcount
            conn.execute("COMMIT")
            return gone

        return self._run(write) if unique else 0

    def compact(self) -> None:
        """Rewrite the file without free pages, then empty the WAL: a deleted answer's bytes stay in both
        until then (sqlite only marks the pages free)."""
        def vacuum(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        self._run(vacuum)


def _is_busy(err: BaseException) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _is_damage(err: BaseException) -> bool:
    """A file that is not a usable cache (not a database, malformed, no table, cannot be opened).

    Not: a lock held too long by another process, or a programming error (wrong bindings and such).
    """
    return (isinstance(err, sqlite3.DatabaseError) and not _is_busy(err)
            and not isinstance(err, (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.DataError,
                                     sqlite3.NotSupportedError)))
