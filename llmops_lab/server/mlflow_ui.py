"""``llmops-lab ui`` for a local store, started on demand by the panel: one per store, on 127.0.0.1."""
from __future__ import annotations

import socket
from typing import Any

from llmops_lab.server import processes
from llmops_lab.server.errors import ApiError
from llmops_lab.server.stores import Store

HOST = "127.0.0.1"
_urls: dict[str, str] = {}  # tracking URI -> UI URL of the child started for it


def _key(store: Store) -> str:
    return f"mlflow-ui:{store.uri}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    """Whether the UI accepts connections yet (it needs ~10 s after start)."""
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def status(store: Store) -> dict[str, Any]:
    proc = processes.running(_key(store))
    url = _urls.get(store.uri) if proc is not None else None
    return {"running": proc is not None, "url": url, "ready": bool(url) and _ready(url)}


def start(store: Store) -> dict[str, Any]:
    """Start the UI for this store unless it runs already; returns at once (the UI comes up in ~10 s)."""
    if store.sqlite_path is None:
        raise ApiError(400, f"the tracking store is {store.shown_uri}: open its own UI (llmops-lab ui serves "
                            "local sqlite stores)")
    if processes.running(_key(store)) is None:
        port = _free_port()
        _, started = processes.start(_key(store), processes.llmops_command("ui", "--port", str(port), "--host", HOST),
                                     cwd=store.settings.project_root,
                                     log=store.settings.home / "logs" / "mlflow-ui.log")
        if started:  # a concurrent request may have started it first: keep that one's URL
            _urls[store.uri] = f"http://{HOST}:{port}"
    return status(store)
