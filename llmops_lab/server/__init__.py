"""jupyter-server extension behind the JupyterLab LLMOps sidebar (REST contract: docs/server-api.md).

Loading it registers routes and starts one background thread that imports MLflow at low priority
(``stores.warm_up``: the panel's first live refresh no longer pays for it); pandas and papermill load inside
request handlers, and no process starts until a request asks for one (``mlflow-ui``, ``jobs/<name>/run``).
"""
from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "llmops_lab.server"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    import os
    from pathlib import Path

    from llmops_lab.server.routes import setup_routes

    import atexit

    from llmops_lab.server.processes import stop_all

    # jupyter-server 2.x never calls _unload_jupyter_server_extension for a module extension: stop the
    # MLflow UIs and job runs this server started when its process exits (SIGTERM and Ctrl-C included)
    atexit.register(stop_all)
    root = str(Path(server_app.root_dir).expanduser().resolve())
    setup_routes(server_app.web_app, root)
    if os.environ.get("LLMOPS_SERVER_WARM_UP", "1") != "0":
        from llmops_lab.server.stores import start_warm_up

        start_warm_up(root)
    server_app.log.info("llmops-lab: sidebar API at %sllmops-lab/api/ (root %s)",
                        server_app.web_app.settings["base_url"], root)


def _unload_jupyter_server_extension(server_app: Any) -> None:
    """Stop the MLflow UIs and job runs this server started (for servers that unload extensions)."""
    from llmops_lab.server.processes import stop_all

    stop_all()
