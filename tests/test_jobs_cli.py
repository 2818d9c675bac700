"""The job commands through the installed `llmops-lab` entry point: bad inputs are one-line errors that
leave llmops_jobs.toml untouched; promote/list/history/export/remove; the scheduler stops on SIGTERM."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import make_project

NOTEBOOKS = Path(__file__).parent / "notebooks"
BIN = Path(sys.executable).parent / "llmops-lab"
EXISTING = """\
[jobs.keep]
notebook = "notebooks/success.ipynb"
schedule = "0 3 * * *"

[jobs.keep.parameters]
repeat = 1
"""


def cli(*args, cwd, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LLMOPS_HOME")}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    base = tmp_path_factory.mktemp("jobscli")
    shutil.copy(NOTEBOOKS / "success.ipynb", base / "outside.ipynb")
    # no store: the scheduler test checks that it creates one before running anything
    root = make_project(base / "project", {**{f"notebooks/{nb.name}": nb for nb in NOTEBOOKS.glob("*.ipynb")},
                                           "llmops_jobs.toml": EXISTING})
    (root / "notebooks" / "link.ipynb").symlink_to(base / "outside.ipynb")
    return root


@pytest.mark.parametrize("args, message", [
    (["jobs", "run", "nope"], "no job named 'nope' in llmops_jobs.toml: known jobs: keep"),
    (["jobs", "history", "kep"], "no job named 'kep' in llmops_jobs.toml: did you mean 'keep'?"),
    (["promote", "notebooks/success.ipynb", "--name", "x", "--schedule", "0 25 * * *"],
     "schedule '0 25 * * *' is not a valid cron expression"),
    (["promote", "notebooks/success.ipynb", "--name", "x", "-p", "repeat=many"],
     "parameter repeat='many' is not a valid int: the notebook's default is 2"),
    (["promote", "../outside.ipynb", "--name", "x"], "notebook ../outside.ipynb is outside the project"),
    (["promote", "notebooks/link.ipynb", "--name", "x"], "notebook notebooks/link.ipynb is outside the project"),
    (["promote", "notebooks/corrupted.ipynb", "--name", "x"],
     "corrupted.ipynb is not a valid notebook (NotJSONError"),
    (["promote", "notebooks/no_params.ipynb", "--name", "x"],
     "notebooks/no_params.ipynb has no cell tagged 'parameters': papermill injects job parameters after that "
     "cell; tag one in Jupyter (Property Inspector > Cell Tags); or pass --add-parameters-cell to make one from "
     "the first cell's assignments (model, threshold)"),
    (["promote", "notebooks/success.ipynb", "--name", "keep"], "job 'keep' already exists"),
    (["promote", "notebooks/success.ipynb", "--name", "bad name!"], "job name 'bad name!' is not valid"),
    (["promote", "notebooks/success.ipynb", "--name", "x", "--kernel", "julia-1.9"],
     "kernel 'julia-1.9' is not installed"),
    (["promote", "notebooks/success.ipynb", "--name", "x", "--min", "0.5"], "need --gate METRIC"),
])
def test_bad_inputs_are_one_line_errors_and_leave_the_jobs_file_untouched(proj, args, message):
    before = (proj / "llmops_jobs.toml").read_bytes()
    out = cli(*args, cwd=proj)
    assert out.returncode == 2, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("llmops-lab: error: ") and message in last, out.stderr
    assert "Traceback" not in out.stderr
    assert (proj / "llmops_jobs.toml").read_bytes() == before
    assert not list(proj.glob(".llmops_jobs.toml.*"))  # no temp file left behind


def test_promote_list_history_export_remove(proj, tmp_path):
    out = cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "30 9 * * 1-5",
              "--timezone", "Europe/Paris", "-p", "accuracy=0.8", "--timeout", "1800", "--retries", "1",
              "--gate", "accuracy", "--min", "0.8", "--max-drop", "0.05", cwd=proj)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "promoted job nightly: notebooks/metrics.ipynb (kernel python3)"
    assert lines[1] == "  schedule: 30 9 * * 1-5 = at 09:30, on Monday through Friday (Europe/Paris)"
    assert lines[2].startswith("  next runs: ") and lines[2].count("09:30 CE") == 3
    assert "  gate: accuracy >= 0.8 and accuracy drops at most 0.05 vs the previous completed execution" in lines
    text = (proj / "llmops_jobs.toml").read_text()
    assert text.index("[jobs.keep]") < text.index("[jobs.nightly]")
    assert ('[jobs.nightly]\nnotebook = "notebooks/metrics.ipynb"\nschedule = "30 9 * * 1-5"\n'
            'timezone = "Europe/Paris"\nkernel = "python3"\ntimeout = 1800\nretries = 1\n'
            'gate = {metric = "accuracy", min = 0.8, max_drop = 0.05}\n\n'
            '[jobs.nightly.parameters]\naccuracy = 0.8\n') in text

    listed = cli("jobs", "list", cwd=proj)
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "NEXT", "RUN", "LAST", "STATUS", "LAST", "SCORE"]
    assert [r.split()[0] for r in rows] == ["keep", "nightly"] and "never run" in rows[1]

    assert cli("jobs", "history", "nightly", cwd=proj).stdout.startswith("job nightly has not run yet")

    dag = tmp_path / "dags" / "llmops_nightly.py"
    assert cli("jobs", "export", "nightly", "--to", "airflow", "-o", str(dag), cwd=proj).returncode == 0
    compile(dag.read_text(), str(dag), "exec")
    flow = cli("jobs", "export", "nightly", "--to", "github-actions", cwd=proj)
    assert flow.returncode == 0 and "cron: \"30 9 * * 1-5\"" in flow.stdout
    assert "save as .github/workflows/llmops-nightly.yml" in flow.stderr
    crontab = cli("jobs", "export", "nightly", "--to", "cron", cwd=proj).stdout
    assert "CRON_TZ=Europe/Paris\n30 9 * * 1-5 mkdir -p " in crontab
    assert " jobs run nightly --trigger cron >> " in crontab
    bad = cli("jobs", "export", "nightly", "--to", "github-actions", "--install", "llmops-lab>=0.1", cwd=proj)
    assert bad.returncode != 0 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
    assert "--install 'llmops-lab>=0.1' is not valid" in bad.stderr

    removed = cli("jobs", "remove", "nightly", cwd=proj)
    assert removed.returncode == 0 and "[jobs.nightly]" not in (proj / "llmops_jobs.toml").read_text()
    from llmops_lab.jobs import load_jobs

    assert list(load_jobs(proj)) == ["keep"] and load_jobs(proj)["keep"].parameters == {"repeat": 1}


@pytest.mark.slow
def test_scheduler_stops_cleanly_on_sigterm(proj):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LLMOPS_HOME")}
    proc = subprocess.Popen([str(BIN), "scheduler", "--poll", "1"], cwd=proj, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()  # blocks until the store is ready and the loop started
        assert "scheduler: started" in first and "jobs: keep" in first
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping" in out and out.strip().splitlines()[-1].endswith("scheduler: stopped")
    assert (proj / ".llmops" / "mlflow.db").is_file()  # the store was created before anything ran
