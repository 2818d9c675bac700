"""Team scale against a real ``mlflow server --app-name basic-auth`` started by ``llmops-lab server start``:
every role against the real server (admin, editor, reader, no account), a READ user can read runs and load
prompts but cannot log nor create experiments or prompts (and is told so clearly, once, not on every retry);
the users database is owner-only; then the server is killed while records are being written, calls go on
(queued), it is restarted, and every record arrives exactly once.

Slow (two server starts, each 10-30 s on 2 cores): ``pytest -m slow tests/test_team_server.py``. PostgreSQL:
``tests/test_team_postgres.py``.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import time
from collections import Counter

import pytest

import llmops_lab
from llmops_lab import tracking
from conftest import assert_spool_delivered
from teamserver import ADMIN, BIN, Server, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
READER = ("reader", "reader-password-0123")
EDITOR = ("editor", "editor-password-0123")
PROMPT_TAGS = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teamserver")
    (folder / "llmops.toml").write_text("")
    srv = Server(folder, free_port())
    srv.start_s = srv.start()
    yield srv
    srv.kill()


def as_user(monkeypatch, user: tuple[str, str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])


def mode(path) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))


def test_server_command_is_what_we_document(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    out = subprocess.run([str(BIN), "server", "start", "--dry-run", "--port", "5999"], cwd=tmp_path, timeout=60,
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
                                                              "LLMOPS_SERVER_BACKEND_URI": "sqlite:////tmp/x.db"})
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[0]
    assert "mlflow server --artifacts-destination" in line and "--backend-store-uri" not in line
    assert "(backend store from the environment: sqlite:////tmp/x.db)" in line
    assert "--app-name basic-auth" in line and "--port 5999" in line and ADMIN[1] not in out.stdout
    folder = tmp_path / ".llmops" / "server"
    ini = (folder / "basic_auth.ini").read_text()
    assert "default_permission = READ" in ini and ADMIN[1] not in ini
    assert "authorization_function = llmops_lab.tracking.team_auth:authenticate_request" in ini
    assert mode(folder / "basic_auth.ini") == mode(folder / "basic_auth.db") == "0o600"
    assert mode(folder) == "0o700"
    assert f"users and permissions: {folder / 'basic_auth.db'} (mode 0600" in out.stdout and ".backup(sqlite3" in out.stdout


def test_read_user_reads_but_cannot_log_with_a_clear_error(server, fake, project, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    print(f"\nmlflow server with basic auth answered /health after {server.start_s:.1f} s")
    llmops_lab.configure(tracking_uri=server.url)
    as_user(monkeypatch, ADMIN)
    first = llmops_lab.run("Team prompt for {{ who }}", {"who": "ada"}, name="team-prompt")
    assert tracking.flush(120) == 0, tracking.get_tracker().last_error
    assert first.run_id and first.prompt_uri == "prompts:/team-prompt/1"
    server.api("2.0/mlflow/users/create", {"username": READER[0], "password": READER[1]})

    as_user(monkeypatch, READER)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    run = client.get_run(first.run_id)  # reading works
    assert run.data.tags["llmops.user"] and run.data.tags["llmops.prompt"] == "team-prompt@1"
    mlflow.set_registry_uri(server.url)
    assert mlflow.genai.load_prompt("prompts:/team-prompt/1").template == "Team prompt for {{ who }}"
    audit = llmops_lab.audit.audit_log(since="1h")
    assert first.run_id in set(audit["run_id"])

    denied = llmops_lab.run("Team prompt for {{ who }}", {"who": "bob"}, name="team-prompt")
    assert denied.text == "echo: Team prompt for bob"  # the call itself works
    assert denied.run_id is None and denied.tracking_status == "queued"
    error = tracking.get_tracker().last_error
    assert error.startswith("MLflow refused to log: user 'reader' has no write permission") and "EDIT" in error
    assert "no permission" in denied.footer() and "unreachable" not in denied.footer()
    assert tracking.flush(3) == 1  # still waiting in the spool, not lost
    spool = "".join(p.read_text() for p in (project / ".llmops" / "spool").glob("*.jsonl"))
    assert denied.record_id in spool

    # An admin grants EDIT: the queued record is delivered on the next flush, once.
    exp_id = run.info.experiment_id
    server.api("3.0/mlflow/users/permissions/grant", {"username": READER[0], "resource_type": "experiment",
                                                      "resource_id": exp_id, "permission": "EDIT"})
    assert tracking.flush(60) == 0
    assert denied.run_id and client.get_run(denied.run_id).data.tags["llmops.user"]
    tagged = client.search_runs([exp_id], f"tags.`llmops.record_id` = '{denied.record_id}'")
    assert len(tagged) == 1


def test_users_database_is_owner_only_and_its_place_is_printed(server):
    folder = server.folder / ".llmops" / "server"
    assert (folder / "basic_auth.db").stat().st_size > 0  # the server wrote its users there
    assert mode(folder / "basic_auth.db") == mode(folder / "basic_auth.ini") == mode(folder / "mlflow.db") == "0o600"
    assert mode(folder) == "0o700"
    for extra in folder.glob("basic_auth.db-*"):  # sqlite journals, if any, keep the database's mode
        assert mode(extra) == "0o600", extra
    log = server.log()
    assert f"users and permissions: {folder / 'basic_auth.db'} (mode 0600" in log
    assert f"sqlite3.connect('{folder / 'basic_auth.db'}').backup(" in log


def test_every_role_against_the_real_server(server):
    """admin: everything; editor (EDIT on experiment * and prompt *): creates experiments and prompts and logs
    anywhere, no models; reader (default READ): reads only; no account or a wrong password: 401."""
    for user in (EDITOR, READER):
        server.ensure_user(user)
    server.make_editor(EDITOR[0])

    def create_experiment(user, name):
        return server.request("api/2.0/mlflow/experiments/create", {"name": name}, user)

    def create_prompt(user, name):
        return server.request("api/2.0/mlflow/registered-models/create", {"name": name, "tags": PROMPT_TAGS}, user)

    def create_model(user, name):
        return server.request("api/2.0/mlflow/registered-models/create", {"name": name}, user)

    def create_run(user, experiment_id):
        return server.request("api/2.0/mlflow/runs/create", {"experiment_id": experiment_id}, user)

    # admin
    status, text = create_experiment(ADMIN, "roles-admin")
    assert status == 200, text
    admin_exp = json.loads(text)["experiment_id"]
    assert create_prompt(ADMIN, "roles-admin-prompt")[0] == 200
    assert create_model(ADMIN, "roles-admin-model")[0] == 200
    assert create_run(ADMIN, admin_exp)[0] == 200

    # reader: reads everything, creates and writes nothing
    status, text = server.request(f"api/2.0/mlflow/experiments/get?experiment_id={admin_exp}", None, READER)
    assert status == 200 and "roles-admin" in text
    assert server.request("api/2.0/mlflow/registered-models/get?name=roles-admin-prompt", None, READER)[0] == 200
    for status, text in (create_experiment(READER, "roles-reader"), create_prompt(READER, "roles-reader-prompt"),
                         create_model(READER, "roles-reader-model")):
        assert status == 403 and "may not create" in text and "EDIT" in text, (status, text)
    assert create_run(READER, admin_exp)[0] == 403
    status, text = server.request("api/2.0/mlflow/experiments/get-by-name?experiment_name=roles-reader", None, READER)
    assert status == 404  # the refused create left nothing behind

    # editor: creates experiments and prompts, logs to any experiment; models were not granted
    status, text = create_experiment(EDITOR, "roles-editor")
    assert status == 200, text
    assert create_prompt(EDITOR, "roles-editor-prompt")[0] == 200
    assert create_run(EDITOR, admin_exp)[0] == 200
    assert create_model(EDITOR, "roles-editor-model")[0] == 403
    assert server.request("api/2.0/mlflow/users/create", {"username": "x", "password": "x-password-0123"},
                          EDITOR)[0] == 403  # managing users stays with admins

    # no account, wrong password, unknown user: 401 on reads and writes alike
    for auth in (None, (READER[0], "wrong-password-0123"), ("nobody", "nobody-password-0123")):
        assert server.request("api/2.0/mlflow/experiments/search", {"max_results": 1}, auth)[0] == 401
        assert create_experiment(auth, "roles-anon")[0] == 401
    assert server.request("health", None, None)[0] == 200  # the health check needs no account


def test_read_user_in_a_new_notebook_cannot_create_its_experiment(server, fake, project, monkeypatch, caplog):
    """Stock MLflow would let the READ user create the notebook's experiment and log freely; here the write is
    refused with one clear line, and refused writes back off (not one log line per retry)."""
    llmops_lab.configure(tracking_uri=server.url, experiment="notebooks/reader-new")
    as_user(monkeypatch, READER)
    caplog.set_level(logging.WARNING, logger="llmops_lab.tracking")
    results = [llmops_lab.run("Reader prompt {{ i }}", {"i": i}, name="reader-new-prompt") for i in range(6)]
    started = time.monotonic()
    assert tracking.flush(8) == 6  # still queued: refused, not lost
    tracker = tracking.get_tracker()
    assert tracker.last_error.startswith("MLflow refused to log: user 'reader' may not create an experiment")
    assert "EDIT" in tracker.last_error
    assert all(r.run_id is None and r.tracking_status == "queued" for r in results)
    assert "no permission" in results[-1].footer()
    lines = [r.getMessage() for r in caplog.records if r.name == "llmops_lab.tracking"]
    waited = time.monotonic() - started
    print(f"\n{tracker.failures} refused writes in {waited:.1f} s of flush, {len(lines)} log line(s)")
    assert len(lines) == 1 and "may not create an experiment" in lines[0], lines
    assert tracker.failures < 20  # back-off: not ~10 retries a second while flush() waits
    tracking.shutdown(1)
    summary = [r.getMessage() for r in caplog.records if r.name == "llmops_lab.tracking"][1:]
    assert len(summary) == 1 and summary[0].endswith(f"({tracker.failures - 1} more like this)"), summary
    from mlflow import MlflowClient

    as_user(monkeypatch, ADMIN)
    assert MlflowClient(tracking_uri=server.url).get_experiment_by_name("notebooks/reader-new") is None


def test_editor_in_a_new_notebook_creates_its_experiment_and_prompt(server, fake, project, monkeypatch):
    from mlflow import MlflowClient

    server.ensure_user(EDITOR)
    server.make_editor(EDITOR[0])
    llmops_lab.configure(tracking_uri=server.url, experiment="notebooks/editor-new")
    as_user(monkeypatch, EDITOR)
    r = llmops_lab.run("Editor prompt for {{ who }}", {"who": "ada"}, name="editor-new-prompt")
    assert tracking.flush(60) == 0, tracking.get_tracker().last_error
    assert r.run_id and r.prompt_uri == "prompts:/editor-new-prompt/1"
    client = MlflowClient(tracking_uri=server.url)
    run = client.get_run(r.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "notebooks/editor-new"


def test_server_killed_mid_writes_and_restarted_loses_nothing(server, fake, project, monkeypatch):
    import pandas as pd
    from mlflow import MlflowClient

    llmops_lab.configure(tracking_uri=server.url)
    as_user(monkeypatch, ADMIN)
    records: list[str] = []
    for i in range(8):  # the writer works through these (~0.2 s each) while the server is killed
        records.append(llmops_lab.run("resilience {{ i }}", {"i": i}, name="resilience").record_id)
    time.sleep(0.8)
    server.kill()
    killed_at = time.monotonic()
    for i in range(8, 16):  # calls go on while the store is down
        r = llmops_lab.run("resilience {{ i }}", {"i": i}, name="resilience")
        records.append(r.record_id)
    results = llmops_lab.batch("row {{ a }}", pd.DataFrame({"a": range(30)}), name="resilience-batch",
                               progress=False, trace_sample=1)
    batch_record = results.attrs["llmops"]["record_id"]
    assert tracking.flush(2) > 0  # the store is down: records wait
    assert r.tracking_status == "queued" and "queued" in r.footer()
    print(f"server down for {time.monotonic() - killed_at:.1f} s; {tracking.get_tracker().failures} failed writes")

    restart_s = server.start()
    print(f"restarted in {restart_s:.1f} s")
    assert tracking.flush(120) == 0, tracking.get_tracker().last_error
    client = MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("llmops-lab")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    counts = Counter(run.data.tags.get("llmops.record_id") for run in runs)
    lost = [rid for rid in [*records, batch_record] if counts[rid] == 0]
    twice = {rid: n for rid, n in counts.items() if n > 1}
    print(f"records: {len(records) + 1} sent, {len(lost)} lost, {len(twice)} written twice")
    assert lost == [] and twice == {}
    batch_run = next(run for run in runs if run.data.tags.get("llmops.record_id") == batch_record)
    assert batch_run.info.status == "FINISHED" and batch_run.data.metrics["rows"] == 30
    assert all(run.info.status in ("FINISHED", "FAILED") for run in runs)
    assert_spool_delivered(project)
