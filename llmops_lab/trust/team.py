"""Team setup: a real ``mlflow server`` with basic auth, a database backend and an artifact root.

``llmops-lab server start`` builds and runs (execs) the command::

    mlflow server --artifacts-destination DEST --host 127.0.0.1 --port 5000 --workers 1 --app-name basic-auth

with the backend store URI in the server's environment (``MLFLOW_BACKEND_STORE_URI``, which ``mlflow server``
reads), never in its arguments: ``ps`` and ``/proc/PID/cmdline`` are readable by every local user, a
process's environment only by its owner.

Secrets stay in the environment of the shell that runs it, never in files or the command line:
``MLFLOW_AUTH_ADMIN_PASSWORD`` (first start: creates the admin user, at least 12 characters),
``LLMOPS_SERVER_BACKEND_URI`` (e.g. ``postgresql://mlflow:PASSWORD@db/mlflow``; default a sqlite file under
``.llmops/server/``), ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (CSRF; a random one per start if unset). The auth
config written to ``.llmops/server/basic_auth.ini`` (mode 0600) holds no password unless the auth database is
a server given by ``LLMOPS_SERVER_AUTH_DB_URI``. The users database (``.llmops/server/basic_auth.db``) is
created 0600 in a 0700 folder, and the server runs with umask 077, so what it writes is its owner's only.

TLS: ``--tls-cert CERT --tls-key KEY`` adds ``--uvicorn-opts "--ssl-certfile CERT --ssl-keyfile KEY"`` (MLflow
3.17 serves through uvicorn and passes the options on), so the server speaks https itself; otherwise put a TLS
proxy in front (docs/security.md "Transport and encryption"). Basic auth on an interface other than loopback
without TLS prints a warning (:func:`llmops_lab.trust.transport.server_warning`); clients refuse to send
credentials to such a URL unless ``allow_insecure_transport`` is set.

Permissions: :mod:`llmops_lab.tracking.team_auth` is the server's ``authorization_function``: MLflow's basic auth,
plus "creating an experiment or a prompt (or model) needs EDIT" (stock MLflow lets every user create them).

Clients (notebooks, jobs) point at it with ``MLFLOW_TRACKING_URI=http://HOST:PORT`` and authenticate with
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or ``MLFLOW_TRACKING_TOKEN``) from the environment;
a tracking URI with a password in it is refused.
"""
from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmops_lab.exceptions import ConfigError

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
MIN_PASSWORD = 12  # MLflow refuses a shorter admin password
AUTH_CACHE_S = 30
AUTHORIZATION_FUNCTION = "llmops_lab.tracking.team_auth:authenticate_request"
# The pip command for each database driver SQLAlchemy may pick (the module named in its ImportError).
DRIVER_INSTALL = {
    "psycopg": "pip install 'llmops-lab[team]' (or pip install 'psycopg[binary]')",
    "psycopg2": "pip install psycopg2-binary",
    "MySQLdb": "pip install mysqlclient",
    "pymysql": "pip install pymysql",
    "pyodbc": "pip install pyodbc",
    "pg8000": "pip install pg8000",
}


@dataclass
class ServerPlan:
    argv: list[str]
    env: dict[str, str]
    backend_store_uri: str
    artifacts_destination: str
    auth_config: Path | None
    users_db: str | None = None  # where users and permissions live (masked), with auth
    scheme: str = "http"  # https with --tls-cert/--tls-key: uvicorn serves TLS itself
    warnings: list[str] = field(default_factory=list)  # printed at start (e.g. passwords in clear text)

    def describe(self) -> str:
        import shlex

        from llmops_lab.trust.redaction import mask_secrets

        return mask_secrets(shlex.join(self.argv[2:]) + f"  (backend store from the environment: "
                            f"{self.backend_store_uri})")

    def users_note(self) -> str | None:
        """Where users are stored and how to back them up (printed at start)."""
        if self.users_db is None:
            return None
        if self.users_db.startswith("sqlite:///"):
            path = self.users_db[len("sqlite:///"):]
            return (f"users and permissions: {path} (mode 0600; not in the tracking store). Back it up, even "
                    f"while the server runs: python3 -c \"import sqlite3; sqlite3.connect('{path}')"
                    f".backup(sqlite3.connect('users-backup.db'))\" (keep the copy 0600); without it every user "
                    "and grant is gone")
        from llmops_lab.trust.redaction import mask_secrets

        return (f"users and permissions: {mask_secrets(self.users_db)} (LLMOPS_SERVER_AUTH_DB_URI). Back it up "
                "with that database's tools (pg_dump for PostgreSQL); without it every user and grant is gone")


def check_driver(uri: str) -> None:
    """The database driver SQLAlchemy will use for ``uri`` is importable, else a one-line ConfigError.

    ``postgresql://`` and ``postgresql+psycopg://`` use psycopg 3 (SQLAlchemy 2.1's default),
    ``postgresql+psycopg2://`` psycopg2, ``mysql://`` mysqlclient.
    """
    if uri.startswith("sqlite:"):
        return
    scheme = uri.split("://", 1)[0]
    if scheme == "postgres":
        raise ConfigError("backend store 'postgres://' is not understood by SQLAlchemy: write postgresql://")
    from sqlalchemy.engine.url import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(uri).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(f"backend store {scheme!r} is not a database URI SQLAlchemy knows: use sqlite:///PATH "
                          "or postgresql://USER@HOST/DB (password in LLMOPS_SERVER_BACKEND_URI)") from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        module = err.name or dialect.driver
        install = DRIVER_INSTALL.get(module, f"pip install {module}")
        raise ConfigError(f"a {scheme}:// backend uses the {dialect.driver} driver ({module!r} is not importable: "
                          f"{str(err).splitlines()[0][:120]}): {install}") from None


def _owner_only_file(path: Path) -> None:
    """Create ``path`` (empty) or restrict it, 0600: an empty file is a valid new sqlite database."""
    path.touch(mode=0o600)
    path.chmod(0o600)


def plan_server(home: Path, *, host: str = "127.0.0.1", port: int = 5000, backend_store_uri: str | None = None,
                artifacts_destination: str | None = None, auth: bool = True, default_permission: str = "READ",
                workers: int = 1, allowed_hosts: str | None = None, tls_cert: str | None = None,
                tls_key: str | None = None, environ: Mapping[str, str] | None = None) -> ServerPlan:
    """The ``mlflow server`` command and environment for a team server (pure apart from reading files and
    creating ``.llmops/server/`` with owner-only modes)."""
    environ = dict(os.environ if environ is None else environ)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port (1-65535)")
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers {workers} is out of range: use 1 to 64")
    if default_permission not in PERMISSIONS:
        raise ConfigError(f"--default-permission {default_permission!r} is not one of {', '.join(PERMISSIONS)}")
    folder = home / "server"
    backend = backend_store_uri or environ.get("LLMOPS_SERVER_BACKEND_URI") or f"sqlite:///{folder / 'mlflow.db'}"
    if not backend.startswith(("sqlite:", "postgresql", "postgres:", "mysql", "mssql")):
        raise ConfigError(f"backend store {backend.split('://')[0]!r} is not a database URI: use sqlite:///PATH "
                          "or postgresql://USER@HOST/DB (password in LLMOPS_SERVER_BACKEND_URI)")
    check_driver(backend)
    artifacts = artifacts_destination or environ.get("LLMOPS_SERVER_ARTIFACTS") or str(folder / "artifacts")
    # No --backend-store-uri: it may hold a password, and process arguments are public (ps).
    argv = [sys.executable, "-m", "mlflow", "server",
            "--artifacts-destination", artifacts, "--host", host, "--port", str(port), "--workers", str(workers)]
    if allowed_hosts:
        argv += ["--allowed-hosts", allowed_hosts]
    warnings = []
    if tls_cert or tls_key:
        argv += ["--uvicorn-opts", _tls_options(tls_cert, tls_key, warnings)]
    from llmops_lab.trust.transport import server_warning

    warnings += filter(None, [server_warning(host, auth=auth, tls=bool(tls_cert))])
    env = {k: v for k, v in environ.items() if k != "MLFLOW_REGISTRY_STORE_URI"}
    env["MLFLOW_BACKEND_STORE_URI"] = backend
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # users, their permissions and the sqlite stores: the server's owner only
    if backend.startswith("sqlite:///"):
        db = Path(backend[len("sqlite:///"):])
        if db.parent.is_dir():
            _owner_only_file(db)
    auth_config = users_db = None
    if auth:
        if importlib.util.find_spec("flask_wtf") is None:
            raise ConfigError("basic auth needs mlflow's auth extra: pip install 'llmops-lab[team]'")
        users_db = environ.get("LLMOPS_SERVER_AUTH_DB_URI") or f"sqlite:///{folder / 'basic_auth.db'}"
        if users_db.startswith("sqlite:///"):
            db = Path(users_db[len("sqlite:///"):])
            first_start = not db.exists() or db.stat().st_size == 0
        else:
            check_driver(users_db)
            first_start = False
        password = environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
        if first_start and len(password) < MIN_PASSWORD:
            raise ConfigError("first start of the auth server: export MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 "
                              "characters) so the admin user can be created; it is read once and never stored")
        if users_db.startswith("sqlite:///") and db.parent.is_dir():
            _owner_only_file(db)  # MLflow would create it with the umask (0644: every local user reads hashes)
        auth_config = folder / "basic_auth.ini"
        _owner_only_file(auth_config)  # may hold a database password (LLMOPS_SERVER_AUTH_DB_URI): owner only
        auth_config.write_text(
            "[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {users_db.replace('%', '%%')}\n"
            f"admin_username = {environ.get('MLFLOW_AUTH_ADMIN_USERNAME') or 'admin'}\n"
            # MLflow's basic auth, plus: creating an experiment or a prompt needs EDIT (llmops_lab/tracking/team_auth.py).
            f"authorization_function = {AUTHORIZATION_FUNCTION}\n"
            # A password check is a scrypt hash (werkzeug's default; ~0.1-0.5 s of CPU); a run write is ~10 requests. Cache good
            # credentials for 30 s per worker (password changes through the API apply at once on that worker).
            f"auth_cache_ttl_seconds = {AUTH_CACHE_S}\n", encoding="utf-8")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_urlsafe(32))
        argv += ["--app-name", "basic-auth"]
    return ServerPlan(argv, env, backend, artifacts, auth_config, users_db, "https" if tls_cert else "http", warnings)


def _tls_options(cert: str | None, key: str | None, warnings: list[str]) -> str:
    """``--uvicorn-opts`` for TLS served by uvicorn itself (MLflow 3.17 runs uvicorn and passes them on)."""
    import shlex
    import stat

    if not (cert and key):
        raise ConfigError("--tls-cert and --tls-key go together: the certificate (PEM, with its chain) and its "
                          "private key")
    paths = []
    for flag, given in (("--tls-cert", cert), ("--tls-key", key)):
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{flag} {given}: no such file")
        paths.append(path)
    if paths[1].stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"warning: the TLS key {paths[1]} is readable by other users: chmod 600 it")
    return f"--ssl-certfile {shlex.quote(str(paths[0]))} --ssl-keyfile {shlex.quote(str(paths[1]))}"


def exec_server(plan: ServerPlan) -> None:
    """Replace this process with the server (Ctrl-C / SIGTERM stop it). Umask 077: the databases, logs and
    artifacts it creates are its owner's only."""
    sys.stdout.flush()
    os.umask(0o077)
    os.execve(plan.argv[0], plan.argv, plan.env)
