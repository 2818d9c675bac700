"""Tracking front door: ``submit`` a record, ``flush``, read back ``recent_runs``.

One :class:`Tracker` per process (spool under ``<home>/spool``); it writes through ``MlflowSink``.
"""
from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from llmops_lab.config import Settings, get_settings
from llmops_lab.tracking import context
from llmops_lab.tracking.spool import has_orphans
from llmops_lab.tracking.tracker import Ticket, Tracker

__all__ = ["Ticket", "Tracker", "submit", "flush", "recent_runs", "replay_if_needed", "shutdown", "get_tracker"]

EXIT_FLUSH_S = float(os.environ.get("LLMOPS_EXIT_FLUSH_S", "3"))
_tracker: Tracker | None = None
_lock = threading.Lock()


def get_tracker(settings: Settings | None = None) -> Tracker:
    """This process's tracker: the thread writer, or with ``writer = "process"`` the writer process's client."""
    global _tracker
    with _lock:
        if _tracker is None:
            settings = settings or get_settings()
            if settings.writer == "process":
                from llmops_lab.tracking.writer_client import WriterClient

                _tracker = WriterClient(settings)  # type: ignore[assignment]  # Tracker's interface
                return _tracker

            def sink_factory():
                from llmops_lab.tracking.mlflow_sink import MlflowSink

                return MlflowSink(get_settings)

            _tracker = Tracker(settings.home / "spool", sink_factory)
        return _tracker


def submit(record: dict[str, Any], settings: Settings | None = None) -> Ticket:
    """Spool ``record`` (durable at return) and queue it for MLflow."""
    return get_tracker(settings).submit(record)


def flush(timeout: float = 30.0) -> int:
    """Write everything pending to MLflow; returns how many records still wait (0 when all written)."""
    return get_tracker().flush(timeout)


def replay_if_needed(settings: Settings | None = None) -> None:
    """At load: if an earlier process left records in the spool, start writing them in the background."""
    settings = settings or get_settings()
    if settings.tracking and has_orphans(settings.home / "spool"):
        get_tracker(settings).start()


def shutdown(timeout: float = EXIT_FLUSH_S) -> int:
    """Flush (bounded), stop the writer, forget the tracker. What is left stays in the spool."""
    global _tracker
    with _lock:
        tracker, _tracker = _tracker, None
    return tracker.close(timeout) if tracker is not None else 0


atexit.register(shutdown)


def recent_runs(limit: int = 20, experiment: str | None = None):
    """The newest runs of this notebook's experiment (after a flush) as a DataFrame.

    Lives in :mod:`llmops_lab.tracking.reader` (with the other MLflow readers); kept here for compatibility.
    """
    from llmops_lab.tracking.reader import recent_runs as _recent_runs

    return _recent_runs(limit, experiment)
