"""Per-request store: which settings, MLflow store and experiment a notebook's kernel would use.

Clients come from :func:`llmops_lab.tracking.clients.client_for`: one per tracking URI, built with
``MlflowClient(tracking_uri=…)``; nothing here touches MLflow's process-global tracking URI, so two notebooks
of two projects can be served side by side.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llmops_lab.config import Settings, load_settings
from llmops_lab.server import paths
from llmops_lab.tracking import reader
from llmops_lab.tracking.clients import client_for, warm_imports


def mask_uri(uri: str) -> str:
    """``https://user:secret@host/x`` -> ``https://user:***@host/x``; other URIs unchanged."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
    except ValueError:
        return "<unparseable tracking URI>"
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Store:
    """What one request reads: settings, tracking URI and the notebook's experiment name."""

    settings: Settings
    uri: str
    experiment: str
    notebook: Path | None = None

    @property
    def shown_uri(self) -> str:
        return mask_uri(self.uri)

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.uri[len("sqlite:///"):]) if self.uri.startswith("sqlite:///") else None

    def client(self) -> Any | None:
        """The cached MlflowClient of this store; None while a local store does not exist yet (reading the
        panel must not create a database in the project)."""
        db = self.sqlite_path
        if db is not None and not db.is_file():
            return None
        return client_for(self.uri)


def resolve(root_dir: str | Path, notebook: str | None) -> Store:
    """The store for ``notebook`` (relative to the server root, confined), else for the server root."""
    from llmops_lab.tracking.context import experiment_name

    path = paths.confine(root_dir, notebook) if notebook is not None else None
    settings = load_settings(start=path.parent if path else Path(root_dir))
    return Store(settings, settings.resolved_tracking_uri(), experiment_name(settings, str(path) if path else None),
                 path)


_analyzed: dict[str, float] = {}
ANALYZE_EVERY_S = 300.0


def refresh_planner_stats(store: Store) -> None:
    """Give SQLite's planner statistics (``ANALYZE``) before a metric-ordered search, at most every 5 minutes.

    Ordering by a metric joins ``latest_metrics``; an MLflow sqlite store has no statistics, so SQLite
    scans that table once per run (quadratic: 1.1 s at 3,000 runs, 14 s at 10,000). With statistics it
    builds an index for the join (20 ms). Statistics are not data: MLflow's tables are left as they are.
    Best effort: a busy or read-only store just keeps the slow plan.
    """
    import sqlite3
    import time

    db = store.sqlite_path
    if db is None or not db.is_file() or time.monotonic() - _analyzed.get(str(db), -ANALYZE_EVERY_S) < ANALYZE_EVERY_S:
        return
    _analyzed[str(db)] = time.monotonic()
    try:
        with sqlite3.connect(db, timeout=2.0) as conn:
            conn.execute("PRAGMA analysis_limit = 2000")  # bounded: samples, not a full pass, on big stores
            conn.execute("ANALYZE")
    except sqlite3.Error:
        pass


def experiment_id(store: Store, client: Any, name: str | None = None) -> str | None:
    """The id of ``name`` (default: the notebook's experiment), None when it does not exist yet."""
    return reader.experiment_id(client, name or store.experiment)


def warm_up(root_dir: str | Path) -> None:
    """Pay MLflow's one-time costs before the panel's first live refresh needs them.

    A fresh server imports MLflow, SQLAlchemy and alembic (≈ 7 s of CPU on 2 busy cores) and checks a store's
    schema (≈ 0.7 s) in the first request that reads a store, which is the Runs tab's first refresh after
    the notebook's first cell created it: that refresh took 10–15 s where the next ones take under 2 s.
    Run at extension load in a background thread at low priority; the server root's store, if it exists,
    gets its client too. Best effort: any failure leaves the first request to do the work, as before.
    """
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
    except (AttributeError, OSError):
        pass
    try:
        warm_imports()
        store = resolve(root_dir, None)
        if store.sqlite_path is not None and store.sqlite_path.is_file():
            client_for(store.uri)
    except Exception:  # noqa: BLE001 - a warm-up never breaks the server
        pass


def start_warm_up(root_dir: str | Path) -> threading.Thread:
    thread = threading.Thread(target=warm_up, args=(root_dir,), name="llmops-lab-warm-up", daemon=True)
    thread.start()
    return thread
