"""The team server's ``authorization_function``: MLflow's basic auth, plus "creating needs EDIT".

Stock MLflow basic auth lets every authenticated user create experiments and registered models/prompts
(and makes the creator their MANAGE owner); ``default_permission`` only covers what *others* created. So a
READ user who opens a new notebook would get a new experiment and log freely. Here, a request that creates
an experiment (``experiments/create``) or a registered model or prompt (``registered-models/create``) from a
user who is not an admin is refused with 403 unless the user's permission on *every* resource of that type
(``resource_id = "*"``: a wildcard grant, or ``default_permission``) includes EDIT.

Make a user an editor (may create experiments and prompts, and log to every experiment)::

    POST /api/3.0/mlflow/users/permissions/grant
         {"username": U, "resource_type": "experiment", "resource_id": "*", "permission": "EDIT"}
    (and the same with "resource_type": "prompt" for prompts, "registered_model" for models)

``llmops-lab server start`` writes ``authorization_function = llmops_lab.tracking.team_auth:authenticate_request``
into the auth config; MLflow imports this module in each server worker (Flask, and its FastAPI bridge).
"""
from __future__ import annotations

import logging

from flask import Response, request

log = logging.getLogger("llmops_lab.tracking.team_auth")
PROMPT_TAG = "mlflow.prompt.is_prompt"
CREATE_EXPERIMENT = "/mlflow/experiments/create"
CREATE_REGISTERED_MODEL = "/mlflow/registered-models/create"


def _created_type() -> str | None:
    """The resource type this request creates (experiment, prompt, registered_model), or None."""
    if request.method != "POST":
        return None
    path = request.path.rstrip("/")
    if path.endswith(CREATE_EXPERIMENT):
        return "experiment"
    if path.endswith(CREATE_REGISTERED_MODEL):
        body = request.get_json(force=True, silent=True) or {}
        tags = body.get("tags") or []
        is_prompt = any(isinstance(t, dict) and t.get("key") == PROMPT_TAG and str(t.get("value")).lower() == "true"
                        for t in tags)
        return "prompt" if is_prompt else "registered_model"
    return None


def may_create(username: str, resource_type: str) -> bool:
    """Admins, and users whose wildcard permission on ``resource_type`` includes EDIT."""
    from mlflow.server import auth

    user = auth.store.get_user(username)
    if user.is_admin:
        return True
    return auth._resolve_user_permission_for_resource(username, resource_type, "*").can_update


def _forbidden(username: str, resource_type: str) -> Response:
    what = {"experiment": "an experiment", "prompt": "a prompt"}.get(resource_type, "a registered model")
    message = (f"Permission denied: user {username!r} may not create {what}: creating needs EDIT "
               f"(an admin grants it with resource_type={resource_type!r}, resource_id='*', permission=EDIT)")
    return Response(message, status=403, mimetype="text/plain")


def authenticate_request():
    """MLflow's basic auth; then, for a create request, the EDIT check (403 when it fails)."""
    from mlflow.server.auth import authenticate_request_basic_auth

    authorization = authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    try:
        created = _created_type()
        if created is not None and not may_create(authorization.username, created):
            return _forbidden(authorization.username, created)
    except Exception:  # noqa: BLE001 - fail closed: an error in the check never lets a create through
        log.exception("create-permission check failed")
        if _created_type_safe() is not None:
            return Response("Permission denied: create-permission check failed", status=403, mimetype="text/plain")
    return authorization


def _created_type_safe() -> str | None:
    try:
        return _created_type()
    except Exception:  # noqa: BLE001
        return "unknown"
