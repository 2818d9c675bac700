"""URL table of the extension: ``{base_url}llmops-lab/api/…`` -> handler classes."""
from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join

from llmops_lab.server import handlers

API = "llmops-lab/api"
_NAME = r"(?P<name>[^/]+)"

# (path under API, handler); jobs/preview comes before jobs/<name>/… so it is never read as a job name
ROUTES: list[tuple[str, type]] = [
    ("context", handlers.ContextHandler),
    ("runs", handlers.RunsHandler),
    (r"runs/(?P<run_id>[^/]+)", handlers.RunHandler),
    ("compare", handlers.CompareHandler),
    (r"conversations/(?P<conversation_id>[^/]+)", handlers.ConversationHandler),
    ("prompts", handlers.PromptsHandler),
    (rf"prompts/{_NAME}/diff", handlers.PromptDiffHandler),
    (rf"prompts/{_NAME}/alias", handlers.PromptAliasHandler),
    (rf"prompts/{_NAME}", handlers.PromptHandler),
    ("jobs", handlers.JobsHandler),
    ("jobs/preview", handlers.JobPreviewHandler),
    (rf"jobs/{_NAME}/run", handlers.JobRunHandler),
    (rf"jobs/{_NAME}/history", handlers.JobHistoryHandler),
    (rf"jobs/{_NAME}/executions/(?P<execution>[^/]+)/(?P<what>report|notebook)", handlers.JobFileHandler),
    ("mlflow-ui", handlers.MlflowUiHandler),
]


def url_patterns(base_url: str) -> list[tuple[str, type]]:
    return [(url_path_join(base_url, API, path) + "/?$", handler) for path, handler in ROUTES]


def setup_routes(web_app: Any, root_dir: str) -> None:
    """Register the handlers on the server's tornado application."""
    web_app.settings["llmops_lab_root_dir"] = root_dir
    web_app.add_handlers(".*$", url_patterns(web_app.settings["base_url"]))
