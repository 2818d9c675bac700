"""Team scale against a real ``mlflow server --app-name basic-auth`` started by ``llmops-lab server start``:
a READ user can read runs and load prompts but cannot log (and is told so clearly); then the server is killed
while records are being written, calls go on (queued), it is restarted, and every record arrives exactly once.

Slow (two server starts, each 10-30 s on 2 cores): ``pytest -m slow tests/test_team_server.py``.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import llmops_lab
from llmops_lab import tracking

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
pytest.importorskip("flask_wtf", reason="needs the team extra: pip install -e '.[team]' (make installs it)")
BIN = Path(sys.executable).parent / "llmops-lab"
ADMIN = ("admin", "admin-password-0123")
READER = ("reader", "reader-password-0123")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``llmops-lab server start`` in its own process group (the uvicorn workers die with it)."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port, self.proc = folder, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 150.0) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "LLMOPS_"))}
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = ADMIN[1]
        started = time.monotonic()
        self.proc = subprocess.Popen([str(BIN), "server", "start", "--port", str(self.port)], cwd=self.folder, env=env,
                                     stdout=open(self.folder / "server.log", "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited: {(self.folder / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"the server did not answer /health in {timeout:.0f} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def api(self, path: str, body: dict, auth: tuple[str, str] = ADMIN) -> dict:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request = urllib.request.Request(f"{self.url}/api/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teamserver")
    (folder / "llmops.toml").write_text("")
    srv = Server(folder, _free_port())
    srv.start_s = srv.start()
    yield srv
    srv.kill()


def as_user(monkeypatch, user: tuple[str, str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])


def test_server_command_is_what_we_document(tmp_path):
    (tmp_path / "llmops.toml").write_text("")
    out = subprocess.run([str(BIN), "server", "start", "--dry-run", "--port", "5999"], cwd=tmp_path, timeout=60,
                         capture_output=True, text=True, env={**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
                                                              "LLMOPS_SERVER_BACKEND_URI": "sqlite:////tmp/x.db"})
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[0]
    assert "mlflow server --backend-store-uri sqlite:////tmp/x.db --artifacts-destination" in line
    assert "--app-name basic-auth" in line and "--port 5999" in line and ADMIN[1] not in out.stdout
    ini = (tmp_path / ".llmops" / "server" / "basic_auth.ini").read_text()
    assert "default_permission = READ" in ini and ADMIN[1] not in ini
    assert oct((tmp_path / ".llmops" / "server" / "basic_auth.ini").stat().st_mode & 0o777) == "0o600"


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
    assert not list((project / ".llmops" / "spool").glob("*.jsonl")) or tracking.get_tracker().spool.acked
