"""Why the tracking store refused or failed a write, in one line a user can act on (never a secret).

>>> describe(MlflowException("... failed with error code 403 != 200. Response body: 'Permission denied'",
...                          error_code=PERMISSION_DENIED))                               # doctest: +SKIP
"MLflow refused to log: user 'reader' has no write permission on this experiment (403 PERMISSION_DENIED) ..."
"""
from __future__ import annotations

import os

REFUSED = "MLflow refused to log"
REJECTED = "MLflow rejected the credentials"


def _code(err: BaseException) -> str:
    code = getattr(err, "error_code", None)
    if code is None:
        return ""
    return str(code)


def describe(err: BaseException) -> str:
    """A one-line reason for a failed write; permission and credential errors are spelled out."""
    from llmops_lab.trust.redaction import mask_secrets

    text = str(err)
    code = _code(err)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"user {user!r}" if user else "this user (no MLFLOW_TRACKING_USERNAME set)"
    if "may not create" in text and ("error code 403" in text or "Permission denied" in text):
        what = "a prompt" if "create a prompt" in text else "a model" if "registered model" in text else \
            "an experiment"
        return (f"{REFUSED}: {who} may not create {what} (403 PERMISSION_DENIED); reading works, logging and "
                "creating need EDIT: ask an MLflow admin to grant it. Records stay in the spool and are retried")
    if "PERMISSION_DENIED" in code or "error code 403" in text or "Permission denied" in text:
        return (f"{REFUSED}: {who} has no write permission on this experiment (403 PERMISSION_DENIED); "
                "reading works, logging needs EDIT: ask an MLflow admin to grant it. Records stay in the spool "
                "and are retried")
    if "UNAUTHENTICATED" in code or "error code 401" in text or "not authenticated" in text:
        return (f"{REJECTED} (401): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                "MLFLOW_TRACKING_TOKEN) in the environment that starts Jupyter. Records stay in the spool")
    return mask_secrets(f"{type(err).__name__}: {text}")[:500]


def is_refusal(message: str | None) -> bool:
    """Did the store refuse (permission/credentials) rather than being unreachable?"""
    return bool(message) and message.startswith((REFUSED, REJECTED))
