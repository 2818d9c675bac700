"""The team server's plan (driver pre-check, no password in argv, owner-only files), its create-needs-EDIT
check, and the tracker's one-line-per-distinct-error back-off. Fast; the real servers are in
test_team_server.py and test_team_postgres.py."""
from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest

from llmops_lab.exceptions import ConfigError
from llmops_lab.trust.team import check_driver, plan_server
from teamserver import ADMIN, BIN

SECRET = "db-Secret-Pw-93"


def mode(path) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


@pytest.mark.parametrize("uri", ["postgresql://u:p@h/db", "postgresql+psycopg://u@h/db", "sqlite:////tmp/x.db"])
def test_the_team_extra_driver_serves_plain_postgresql_uris(uri):
    check_driver(uri)  # psycopg 3 comes with llmops-lab[team]; SQLAlchemy 2.1 maps postgresql:// to it


def test_the_precheck_tests_the_driver_the_uri_uses(monkeypatch):
    import importlib.util

    assert importlib.util.find_spec("psycopg"), "psycopg 3 is missing: pip install -e '.[team]' (make installs it)"
    if "psycopg2" not in sys.modules:
        with pytest.raises(ConfigError) as err:
            check_driver(f"postgresql+psycopg2://u:{SECRET}@h/db")
        assert str(err.value).endswith("pip install psycopg2-binary") and "\n" not in str(err.value)
        assert SECRET not in str(err.value)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as without the team extra
    for uri in ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        with pytest.raises(ConfigError) as err:
            check_driver(uri)
        assert "psycopg driver" in str(err.value) and "pip install 'llmops-lab[team]'" in str(err.value)
    with pytest.raises(ConfigError, match="write postgresql://"):
        check_driver("postgres://u@h/db")


def test_server_start_names_the_pip_command_in_one_line(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
           "LLMOPS_SERVER_BACKEND_URI": f"postgresql+psycopg2://mlflow:{SECRET}@db/mlflow"}
    out = subprocess.run([str(BIN), "server", "start", "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    if "psycopg2" in out.stdout:  # psycopg2 happens to be installed: the plan went through
        pytest.skip("psycopg2 is installed here")
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "pip install psycopg2-binary" in out.stderr and SECRET not in out.stderr + out.stdout


def test_plan_keeps_the_password_out_of_argv_and_the_files_owner_only(tmp_path):
    uri = f"postgresql://mlflow:{SECRET}@db.internal/mlflow"
    plan = plan_server(tmp_path, backend_store_uri=uri, environ={"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1]})
    assert all(SECRET not in arg and "postgresql" not in arg for arg in plan.argv)
    assert plan.env["MLFLOW_BACKEND_STORE_URI"] == uri  # `mlflow server` reads it (click envvar)
    assert SECRET not in plan.describe() and "db.internal" in plan.describe()
    folder = tmp_path / "server"
    assert mode(folder) == "0o700"
    assert mode(folder / "basic_auth.db") == mode(folder / "basic_auth.ini") == "0o600"
    assert "llmops_lab.tracking.team_auth:authenticate_request" in (folder / "basic_auth.ini").read_text()
    assert str(folder / "basic_auth.db") in plan.users_note() and "backup" in plan.users_note()
    (folder / "basic_auth.db").chmod(0o644)  # an older start left it world-readable: fixed on the next one
    plan_server(tmp_path, environ={"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1]})
    assert mode(folder / "basic_auth.db") == mode(folder / "mlflow.db") == "0o600"


def test_plan_with_a_users_database_server(tmp_path):
    users = f"postgresql://auth:{SECRET}@db/auth"
    plan = plan_server(tmp_path, environ={"LLMOPS_SERVER_AUTH_DB_URI": users})  # no first-start password needed
    assert SECRET not in plan.users_note() and "pg_dump" in plan.users_note()
    assert not (tmp_path / "server" / "basic_auth.db").exists()


def test_created_type_of_requests():
    from flask import Flask

    from llmops_lab.tracking.team_auth import _created_type

    app = Flask("t")
    cases = [("/api/2.0/mlflow/experiments/create", "POST", {"name": "x"}, "experiment"),
             ("/ajax-api/2.0/mlflow/experiments/create", "POST", {"name": "x"}, "experiment"),
             ("/api/2.0/mlflow/registered-models/create", "POST",
              {"name": "p", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}, "prompt"),
             ("/api/2.0/mlflow/registered-models/create", "POST", {"name": "m"}, "registered_model"),
             ("/api/2.0/mlflow/runs/create", "POST", {"experiment_id": "1"}, None),
             ("/api/2.0/mlflow/experiments/get", "GET", None, None)]
    for path, method, body, expected in cases:
        with app.test_request_context(path, method=method, json=body):
            assert _created_type() == expected, path


class RefusingSink:
    def __init__(self, errors):
        self.errors = errors

    def write(self, record, replay=False):
        if self.errors:
            raise self.errors.pop(0)
        return "run-" + record["id"], None


def test_refused_writes_log_one_line_per_distinct_error(tmp_path, caplog):
    from llmops_lab.tracking.tracker import Tracker

    denied = Exception("API request to endpoint /api/2.0/mlflow/runs/create failed with error code 403 != 200. "
                       "Response body: 'Permission denied'")
    down = ConnectionError("Connection refused")
    errors = [denied] * 40 + [down] * 5 + [denied] * 5
    sink = RefusingSink(errors)
    tracker = Tracker(tmp_path / "spool", lambda: sink)
    caplog.set_level(logging.WARNING, logger="llmops_lab.tracking")
    for i in range(50):
        tracker.submit({"id": f"r{i}"})
    while sink.errors:  # each round retries the queue; flush() wakes the writer
        tracker.flush(0.5)
    assert tracker.flush(10) == 0
    tracker.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "llmops_lab.tracking"]
    assert tracker.failures == 50
    assert len(lines) == 4, lines  # refused once, down once, then both counts when writes worked again
    assert "403 PERMISSION_DENIED" in lines[0] and "Connection refused" in lines[1]
    assert lines[2].endswith("(44 more like this)") and "403" in lines[2]
    assert lines[3].endswith("(4 more like this)") and "Connection refused" in lines[3]
