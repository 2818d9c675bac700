"""How failures become HTTP answers: one status and one line of text, never a traceback or a secret."""
from __future__ import annotations

from typing import Any

from tornado.web import HTTPError

MAX_MESSAGE = 300  # characters of an error message sent to the panel

# MLflow error codes a user (or the panel) can fix, and the status they become; anything else from MLflow
# means the store itself failed or is out of reach (503).
_MLFLOW_STATUS = {
    "RESOURCE_DOES_NOT_EXIST": 404, "NOT_FOUND": 404, "ENDPOINT_NOT_FOUND": 404,
    "INVALID_PARAMETER_VALUE": 400, "BAD_REQUEST": 400, "INVALID_STATE": 400,
    "RESOURCE_ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
}


class ApiError(HTTPError):
    """A request the server refuses: ``status`` and a one-line ``message`` saying what to fix.

    An HTTPError (so tornado answers it as such, without a traceback in the log) whose text is an
    argument, not a format: a ``%`` in a user's value cannot break the log line.
    """

    def __init__(self, status: int, message: str):
        super().__init__(status, "%s", message)
        self.status = status
        self.message = message


def one_line(text: Any) -> str:
    """The first line of ``text``, secrets masked, at most MAX_MESSAGE characters."""
    from llmops_lab.trust.redaction import mask_secrets

    lines = str(text).strip().splitlines()
    line = mask_secrets(lines[0] if lines else "")
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 1] + "…"


def classify(err: BaseException, uri: str | None = None) -> tuple[int, str] | None:
    """(status, message) for an error a request may meet, or None for a bug (which keeps its traceback in
    the server log and reaches the panel as a bare 500)."""
    if isinstance(err, ApiError):
        return err.status, one_line(err.message)
    from llmops_lab.exceptions import LlmopsError

    if isinstance(err, LlmopsError):
        from llmops_lab.exceptions import JobBusyError, JobNotFoundError

        status = 404 if isinstance(err, JobNotFoundError) else 409 if isinstance(err, JobBusyError) else 400
        return status, one_line(err)
    where = f"MLflow at {uri}" if uri else "MLflow"
    name = type(err).__name__
    if type(err).__module__.startswith("mlflow") and hasattr(err, "error_code"):
        status = _MLFLOW_STATUS.get(str(getattr(err, "error_code", "")))
        if status is not None:
            return status, one_line(getattr(err, "message", err))
        return 503, one_line(f"{where} is unreachable or failed: {getattr(err, 'message', err)}")
    # database and network failures underneath MLflow's client (sqlite locked or corrupt, connection refused)
    module = type(err).__module__
    if module.startswith(("sqlalchemy", "sqlite3", "requests", "urllib3")) or isinstance(err, (OSError, TimeoutError)):
        return 503, one_line(f"{where} is unreachable: {name}: {err}")
    return None
