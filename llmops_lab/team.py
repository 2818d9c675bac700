"""Team setup: a real ``mlflow server`` with basic auth, a database backend and an artifact root.

``llmops-lab server start`` builds and runs (execs) the command::

    mlflow server --app-name basic-auth --backend-store-uri URI --artifacts-destination DEST \
                  --host 127.0.0.1 --port 5000 --workers 1

Secrets stay in the environment of the shell that runs it, never in files or the command line:
``MLFLOW_AUTH_ADMIN_PASSWORD`` (first start: creates the admin user, at least 12 characters),
``LLMOPS_SERVER_BACKEND_URI`` (e.g. ``postgresql://mlflow:PASSWORD@db/mlflow``; default a sqlite file under
``.llmops/server/``), ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (CSRF; a random one per start if unset). The auth
config written to ``.llmops/server/basic_auth.ini`` (mode 0600) holds no password unless the auth database is
a server given by ``LLMOPS_SERVER_AUTH_DB_URI``.

Clients (notebooks, jobs) point at it with ``MLFLOW_TRACKING_URI=http://HOST:PORT`` and authenticate with
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``) from the environment;
a tracking URI with a password in it is refused.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
MIN_PASSWORD = 12  # MLflow refuses a shorter admin password
AUTH_CACHE_S = 30


@dataclass
class ServerPlan:
    argv: list[str]
    env: dict[str, str]
    backend_store_uri: str
    artifacts_destination: str
    auth_config: Path | None

    def describe(self) -> str:
        from .redaction import mask_secrets

        return mask_secrets(" ".join(self.argv[2:]))


def plan_server(home: Path, *, host: str = "127.0.0.1", port: int = 5000, backend_store_uri: str | None = None,
                artifacts_destination: str | None = None, auth: bool = True, default_permission: str = "READ",
                workers: int = 1, allowed_hosts: str | None = None,
                environ: Mapping[str, str] | None = None) -> ServerPlan:
    """The ``mlflow server`` command and environment for a team server (pure apart from reading files)."""
    environ = dict(os.environ if environ is None else environ)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port (1-65535)")
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers {workers} is out of range: use 1 to 64")
    if default_permission not in PERMISSIONS:
        raise ConfigError(f"--default-permission {default_permission!r} is not one of {', '.join(PERMISSIONS)}")
    folder = home / "server"
    backend = backend_store_uri or environ.get("LLMOPS_SERVER_BACKEND_URI") or f"sqlite:///{folder / 'mlflow.db'}"
    if backend.startswith(("postgresql", "postgres:")) and importlib.util.find_spec("psycopg2") is None:
        raise ConfigError("a PostgreSQL backend needs the psycopg2 driver: pip install psycopg2-binary")
    if not backend.startswith(("sqlite:", "postgresql", "postgres:", "mysql", "mssql")):
        raise ConfigError(f"backend store {backend.split('://')[0]!r} is not a database URI: use sqlite:///PATH "
                          "or postgresql://USER@HOST/DB (password in LLMOPS_SERVER_BACKEND_URI)")
    artifacts = artifacts_destination or environ.get("LLMOPS_SERVER_ARTIFACTS") or str(folder / "artifacts")
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
            "--artifacts-destination", artifacts, "--host", host, "--port", str(port), "--workers", str(workers)]
    if allowed_hosts:
        argv += ["--allowed-hosts", allowed_hosts]
    env = {k: v for k, v in environ.items()}
    auth_config = None
    if auth:
        if importlib.util.find_spec("flask_wtf") is None:
            raise ConfigError("basic auth needs mlflow's auth extra: pip install 'llmops-lab[team]'")
        auth_db = environ.get("LLMOPS_SERVER_AUTH_DB_URI") or f"sqlite:///{folder / 'basic_auth.db'}"
        first_start = auth_db.startswith("sqlite:///") and not Path(auth_db[len("sqlite:///"):]).exists()
        password = environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
        if first_start and len(password) < MIN_PASSWORD:
            raise ConfigError("first start of the auth server: export MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 "
                              "characters) so the admin user can be created; it is read once and never stored")
        folder.mkdir(parents=True, exist_ok=True)
        auth_config = folder / "basic_auth.ini"
        auth_config.touch(mode=0o600)  # may hold a database password (LLMOPS_SERVER_AUTH_DB_URI): owner only
        auth_config.chmod(0o600)
        auth_config.write_text(
            "[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {auth_db.replace('%', '%%')}\n"
            f"admin_username = {environ.get('MLFLOW_AUTH_ADMIN_USERNAME') or 'admin'}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            # A password check is a PBKDF2 hash (~0.1-0.5 s of CPU); a run write is ~10 requests. Cache good
            # credentials for 30 s per worker (password changes through the API apply at once on that worker).
            f"auth_cache_ttl_seconds = {AUTH_CACHE_S}\n", encoding="utf-8")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_urlsafe(32))
        argv += ["--app-name", "basic-auth"]
    return ServerPlan(argv, env, backend, artifacts, auth_config)


def exec_server(plan: ServerPlan) -> None:
    """Replace this process with the server (Ctrl-C / SIGTERM stop it)."""
    sys.stdout.flush()
    os.execve(plan.argv[0], plan.argv, plan.env)
