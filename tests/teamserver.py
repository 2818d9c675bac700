"""Real servers for the team tests: ``llmops-lab server start`` (MLflow with basic auth) and a throwaway
PostgreSQL cluster (Debian's ``postgresql`` package: ``make postgres`` installs it).

Neither is skipped when missing: a missing tool is a missing install step, so the test fails and says which.
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "llmops-lab"
ADMIN = ("admin", "admin-password-0123")
# Debian's layout (bookworm: 15); LLMOPS_TEST_PG_BIN elsewhere.
PG_BIN = Path(os.environ.get("LLMOPS_TEST_PG_BIN") or
              ([*sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
                        if p.parts[-3].isdigit() else 0)] or [Path("/usr/lib/postgresql/15/bin/initdb")])[-1].parent)
PG_PASSWORD = "pg-Secret-Passw0rd-4711"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()


class Server:
    """``llmops-lab server start`` in its own process group (the uvicorn workers die with it)."""

    def __init__(self, folder: Path, port: int, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 cert: Path | None = None):
        self.folder, self.port, self.proc = folder, port, None
        self.extra_env, self.args = dict(env or {}), args
        # With cert (the server's own, self-signed), the server speaks https and requests verify it with that cert.
        self.context = ssl.create_default_context(cafile=str(cert)) if cert else None
        self.url = f"{'https' if cert else 'http'}://127.0.0.1:{port}"

    def start(self, timeout: float = 150.0) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "LLMOPS_"))}
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = ADMIN[1]
        env.update(self.extra_env)
        started = time.monotonic()
        self.proc = subprocess.Popen([str(BIN), "server", "start", "--port", str(self.port), *self.args],
                                     cwd=self.folder, env=env, stdout=open(self.folder / "server.log", "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2, context=self.context) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"the server did not answer /health in {timeout:.0f} s")

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")

    def pids(self) -> list[int]:
        """The server process and all its descendants (uvicorn workers)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            todo += [int(c) for c in children]
        return found

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def request(self, path: str, body: dict | None = None, auth: tuple[str, str] | None = ADMIN,
                method: str | None = None) -> tuple[int, str]:
        """(status, body text) of an API call; no exception for 4xx."""
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = basic(auth)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}/{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def api(self, path: str, body: dict, auth: tuple[str, str] = ADMIN) -> dict:
        status, text = self.request(f"api/{path}", body, auth)
        assert status == 200, f"{path}: {status} {text[:500]}"
        return json.loads(text or "{}")

    def create_user(self, user: tuple[str, str]) -> None:
        self.api("2.0/mlflow/users/create", {"username": user[0], "password": user[1]})

    def has_user(self, username: str) -> bool:
        status, text = self.request(f"api/2.0/mlflow/users/get?username={username}")
        assert status in (200, 404), f"users/get: {status} {text[:300]}"
        return status == 200

    def ensure_user(self, user: tuple[str, str]) -> None:
        """``user`` exists (the tests of a module share one server: an earlier test may have created it)."""
        if not self.has_user(user[0]):
            self.create_user(user)
        assert self.has_user(user[0])

    def grants(self, username: str) -> dict[tuple[str, str], str]:
        """(resource type, pattern) -> permission, of the grants ``username`` holds."""
        rows = self.api_get(f"3.0/mlflow/users/permissions/list?username={username}")["permissions"]
        return {(r["resource_type"], r["resource_pattern"]): r["permission"] for r in rows}

    def api_get(self, path: str, auth: tuple[str, str] = ADMIN) -> dict:
        status, text = self.request(f"api/{path}", None, auth)
        assert status == 200, f"{path}: {status} {text[:500]}"
        return json.loads(text or "{}")

    def make_editor(self, username: str) -> None:
        """What docs/security.md tells an admin to do: EDIT on every experiment and prompt (granted once; a
        second grant of the same resource is refused by MLflow, so a user already made editor is left as is)."""
        for resource_type in ("experiment", "prompt"):
            if self.grants(username).get((resource_type, "*")) is None:
                self.api("3.0/mlflow/users/permissions/grant", {
                    "username": username, "resource_type": resource_type, "resource_id": "*", "permission": "EDIT"})
            assert self.grants(username)[(resource_type, "*")] == "EDIT"


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run as the ``postgres`` user (Debian's package makes it)."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    """A throwaway cluster: ``initdb -A trust`` in a temp folder, ``pg_ctl start`` on a free port (TCP on
    127.0.0.1, socket in the folder), database ``mlflow`` owned by role ``mlflow``; ``stop`` removes it all."""

    def __init__(self):
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                pytest.fail(f"PostgreSQL is not installed ({PG_BIN / tool} is missing): run `make postgres` "
                            "(apt-get install postgresql), or set LLMOPS_TEST_PG_BIN to its bin folder")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="llmops-pg-"))  # not under pytest's 0700 root-owned tmp
        self.data = self.folder / "data"
        self.started = False

    def _run(self, *argv: str, timeout: float = 120) -> None:
        out = subprocess.run(_as_postgres(list(argv)), capture_output=True, text=True, timeout=timeout,
                             cwd=self.folder)
        if out.returncode:
            pytest.fail(f"{' '.join(argv[:2])} failed ({out.returncode}): {(out.stderr or out.stdout)[-1500:]}")

    def start(self) -> float:
        began = time.monotonic()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
                  "-o", f"-p {self.port} -k {self.folder} -h 127.0.0.1", "start", "-w", "-t", "60")
        self.started = True
        atexit.register(self.stop)  # even when pytest is interrupted before the fixture's teardown
        with self.connect("postgres") as conn:
            conn.autocommit = True
            conn.execute(f"CREATE ROLE mlflow LOGIN PASSWORD '{PG_PASSWORD}'")
            conn.execute("CREATE DATABASE mlflow OWNER mlflow")
        return time.monotonic() - began

    def uri(self, scheme: str = "postgresql") -> str:
        return f"{scheme}://mlflow:{PG_PASSWORD}@127.0.0.1:{self.port}/mlflow"

    def connect(self, dbname: str = "mlflow"):
        import psycopg

        user = "postgres" if dbname == "postgres" else "mlflow"
        return psycopg.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user, password=PG_PASSWORD,
                               connect_timeout=10)

    def query(self, sql: str, *params) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def stop(self) -> None:
        if self.started:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast", "-w"]),
                           capture_output=True, timeout=60, cwd=self.folder)
            self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)
