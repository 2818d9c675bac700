"""The team server on a real PostgreSQL: ``llmops-lab server start`` with ``LLMOPS_SERVER_BACKEND_URI=
postgresql://…`` (psycopg 3, from the team extra) on a throwaway cluster (initdb + pg_ctl as user postgres, a
free port, a temp folder; stopped afterwards). A run, its trace, its prompt version, a batch and a job are
logged through the server, then read back as rows of Postgres' own tables; the database password never
appears in the processes' arguments (``ps``, ``/proc/PID/cmdline``).

Slow (initdb ~5 s, server start 10-30 s on 2 cores). Needs Debian's postgresql package: ``make postgres``.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import llmops_lab
from llmops_lab import tracking
from teamserver import ADMIN, PG_PASSWORD, Postgres, Server, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
NOTEBOOKS = Path(__file__).parent / "notebooks"


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres()
    try:
        pg.start_s = pg.start()
        yield pg
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def pg_server(postgres, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pgteam")
    (folder / "llmops.toml").write_text("")
    srv = Server(folder, free_port(), env={"LLMOPS_SERVER_BACKEND_URI": postgres.uri()})
    try:
        srv.start_s = srv.start()
        yield srv
    finally:
        srv.kill()


def test_the_server_created_mlflows_schema_in_postgres(pg_server, postgres):
    print(f"\npostgres up in {postgres.start_s:.1f} s; mlflow server on it answered /health after "
          f"{pg_server.start_s:.1f} s")
    tables = {name for (name,) in postgres.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"experiments", "runs", "tags", "metrics", "trace_info", "trace_tags", "registered_models",
            "model_versions", "alembic_version"} <= tables, sorted(tables)
    print(f"{len(tables)} tables in Postgres")


def test_no_password_in_the_server_processes_arguments(pg_server):
    pids = pg_server.pids()
    assert len(pids) >= 2, pids  # `mlflow server` and its uvicorn worker(s)
    cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in pids}
    assert any("mlflow" in line for line in cmdlines.values()), cmdlines
    for pid, line in cmdlines.items():
        assert PG_PASSWORD not in line and "postgresql://" not in line, (pid, line)
    ps = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, timeout=30).stdout
    assert str(pids[0]) in ps and PG_PASSWORD not in ps
    assert PG_PASSWORD not in pg_server.log()  # the start line shows the URI masked


def test_run_trace_prompt_batch_and_job_land_in_postgres(pg_server, postgres, fake, project, monkeypatch):
    import pandas as pd
    from mlflow import MlflowClient

    from llmops_lab import jobs

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    llmops_lab.configure(tracking_uri=pg_server.url)
    r = llmops_lab.run("Postgres prompt for {{ who }}", {"who": "ada"}, name="pg-prompt")
    results = llmops_lab.batch("row {{ a }}", pd.DataFrame({"a": range(5)}), name="pg-batch", progress=False,
                               trace_sample=None)  # a trace for every row
    batch_record = results.attrs["llmops"]["record_id"]
    assert tracking.flush(120) == 0, tracking.get_tracker().last_error
    assert r.run_id and r.prompt_uri == "prompts:/pg-prompt/1"

    (project / "notebooks").mkdir()
    shutil.copy(NOTEBOOKS / "success.ipynb", project / "notebooks")
    jobs.promote("notebooks/success.ipynb", "pg-job")
    ex = jobs.run_job("pg-job")
    assert ex.status == "completed" and ex.run_id, ex.error

    # What the server wrote, read from Postgres itself (psycopg), not through MLflow.
    run = postgres.query("SELECT status, experiment_id FROM runs WHERE run_uuid = %s AND lifecycle_stage = 'active'",
                         r.run_id)
    assert run and run[0][0] == "FINISHED"
    assert postgres.query("SELECT value FROM tags WHERE run_uuid = %s AND key = 'llmops.record_id'",
                          r.run_id) == [(r.record_id,)]
    assert postgres.query("SELECT name FROM experiments WHERE experiment_id = %s", run[0][1]) == [("llmops-lab",)]
    traces = postgres.query("SELECT t.value, i.status FROM trace_tags t JOIN trace_info i USING (request_id) "
                            "JOIN trace_request_metadata m USING (request_id) WHERE t.key = 'llmops.record_id' "
                            "AND m.key = 'mlflow.sourceRun' AND m.value = %s", r.run_id)
    assert traces == [(r.record_id, "OK")], traces
    assert postgres.query("SELECT version FROM model_versions WHERE name = 'pg-prompt'") == [(1,)]
    assert postgres.query("SELECT value FROM registered_model_tags WHERE name = 'pg-prompt' AND "
                          "key = 'mlflow.prompt.is_prompt'") == [("true",)]

    # (a write that timed out half-way, on a busy machine, is deleted and written again whole: active runs only)
    batch_run = postgres.query("SELECT run_uuid FROM tags JOIN runs USING (run_uuid) WHERE key = 'llmops.record_id' "
                               "AND value = %s AND lifecycle_stage = 'active'", batch_record)
    assert len(batch_run) == 1
    assert postgres.query("SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'rows'",
                          batch_run[0][0]) == [(5.0,)]
    batch_traces = postgres.query("SELECT count(*) FROM trace_info WHERE request_id IN (SELECT request_id FROM "
                                  "trace_request_metadata WHERE key = 'mlflow.sourceRun' AND value = %s)",
                                  batch_run[0][0])
    assert batch_traces == [(5,)]

    assert postgres.query("SELECT status FROM runs WHERE run_uuid = %s", ex.run_id) == [("FINISHED",)]
    assert postgres.query("SELECT value FROM tags WHERE run_uuid = %s AND key = 'llmops.kind'",
                          ex.run_id) == [("job",)]
    assert postgres.query("SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'words'",
                          ex.run_id) == [(2.0,)]
    client = MlflowClient(tracking_uri=pg_server.url)  # and MLflow reads back the same
    assert client.get_run(ex.run_id).data.tags["llmops.job"] == "pg-job"
    counts = {table: n for table, n in (
        (t, postgres.query(f"SELECT count(*) FROM {t}")[0][0])  # noqa: S608 - fixed table names
        for t in ("runs", "trace_info", "model_versions", "experiments"))}
    print(f"\nrows in Postgres: {counts}")
