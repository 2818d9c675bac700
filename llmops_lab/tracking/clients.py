"""MLflow clients and stores: one ``MlflowClient`` per URI for the kernel and the server, and a new local store
created/migrated once per process under a file lock (MLflow's SQLite migrations race otherwise).

:func:`client_for` never touches MLflow's process-global URI (a server answering for several projects shares
it); :func:`kernel_client` also makes the URI the process's own (:func:`ensure_store`) for fluent APIs such as
``mlflow.log_feedback``. MLflow is imported inside the functions, never at module load.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops_lab.config import Settings

# Traces are exported synchronously so "logged" means logged (the writer is off the critical path). Set before
# this package first imports MLflow, whichever module that is.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

_init_lock = threading.Lock()
_initialised: set[str] = set()  # migrated and set as the process-wide URI
_migrated: set[str] = set()
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def migrate_store(uri: str) -> None:
    """Create/migrate a sqlite store once per process, under a file lock (MLflow's migrations race otherwise).

    Touches no process-global MLflow state, so a server answering for several projects can call it too.
    """
    if uri in _migrated:
        return
    with _init_lock:
        if uri in _migrated:
            return
        import logging

        from mlflow import MlflowClient

        for noisy in ("mlflow.store.db.utils", "alembic"):  # schema creation chatter in the notebook
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if uri.startswith("sqlite:///"):
            from filelock import FileLock

            db = Path(uri[len("sqlite:///"):])
            db.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(db) + ".lock", timeout=120):
                MlflowClient(uri).search_experiments(max_results=1)
        _migrated.add(uri)


def ensure_store(uri: str) -> None:
    """:func:`migrate_store`, then make ``uri`` MLflow's tracking/registry URI in this process (a kernel
    has one store; fluent APIs such as ``mlflow.log_feedback`` use the global)."""
    if uri in _initialised:
        return
    migrate_store(uri)
    with _init_lock:
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        _initialised.add(uri)


def _check_transport(uri: str) -> None:
    """MLflow's REST client sends MLFLOW_TRACKING_USERNAME/PASSWORD (or TOKEN) from the environment with every
    request: never over plain http:// to another machine unless allow_insecure_transport is set. Checked on
    every use (the credentials or the setting may change); a sqlite URI costs one string test."""
    if not uri.startswith(("http:", "HTTP:")):
        return
    from llmops_lab.config import get_settings
    from llmops_lab.trust.transport import check_tracking

    check_tracking(uri, os.environ, allow_insecure=get_settings().allow_insecure_transport)


def client_for(uri: str) -> Any:
    """One MlflowClient per URI, built with the URI (:func:`migrate_store` waits for the writers' migration
    lock on a local store); never MLflow's process-global URI, which a server answering for several
    projects must not have. The kernel's readers and writers and the server share it."""
    _check_transport(uri)
    client = _clients.get(uri)
    if client is not None:
        return client
    with _clients_lock:
        if uri not in _clients:
            from mlflow import MlflowClient

            migrate_store(uri)
            _clients[uri] = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return _clients[uri]


def warm_imports() -> None:
    """Import MLflow, its SQLAlchemy stores and alembic now (≈ 7 s of CPU on a busy machine), so that the first
    :func:`client_for` does not pay for them."""
    import mlflow  # noqa: F401
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401


def kernel_client(uri: str | None = None, settings: "Settings | None" = None) -> Any:
    """The client of this process's store (``uri``, else the settings' tracking URI), which becomes the
    process-wide MLflow URI (:func:`ensure_store`)."""
    if uri is None:
        from llmops_lab.config import get_settings

        uri = (settings or get_settings()).resolved_tracking_uri()
    ensure_store(uri)
    return client_for(uri)
