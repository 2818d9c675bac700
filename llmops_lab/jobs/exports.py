"""Export a job to other schedulers: an Airflow DAG, a crontab line, a GitHub Actions workflow. Pure text
generation, with the absolute paths and the tracking URI of the project that exports.

Each one runs ``llmops-lab jobs run NAME --trigger airflow|cron|ci``, so an execution keeps its full
semantics there: recorded metrics, regression gate, HTML report, one MLflow run, a row of ``jobs history``.
The Airflow DAG can instead run the notebook alone with a PapermillOperator (``operator="papermill"``).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from llmops_lab import __version__
from llmops_lab.config import Settings, get_settings
from llmops_lab.jobs import cron
from llmops_lab.jobs.definition import Job, get_job
from llmops_lab.exceptions import JobError

TARGETS = ("airflow", "cron", "github-actions")
AIRFLOW_OPERATORS = ("bash", "papermill")
SUGGESTED = {"airflow": "dags/llmops_{name}.py", "github-actions": ".github/workflows/llmops-{name}.yml"}
# llama-cpp-python built for any x86-64-v3 runner (the Makefile's flags), never with -march=native.
PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
TRACKING_SECRETS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
_PIN = re.compile(r"^llmops[-_]lab==([0-9][A-Za-z0-9.+!-]*)$")
_GIT = re.compile(r"^git\+https://[A-Za-z0-9.-]+(:[0-9]+)?/[^\s@#]+(@[^\s@#]+)?$")
_WHEEL = re.compile(r"^llmops_lab-[^/\s]+\.whl$")


def export(name: str, to: str, settings: Settings | None = None, *, operator: str | None = None,
           kernel: str | None = None, install: str | None = None) -> str:
    """The text of ``name`` exported ``to`` "airflow", "cron" or "github-actions".

    ``operator`` (airflow): "bash" (default, ``llmops-lab jobs run``) or "papermill" (needs ``kernel``, a
    kernelspec of the project's venv). ``install`` (github-actions): how the workflow installs llmops-lab,
    ``llmops-lab==VERSION`` (default: this version), ``git+https://…`` or the path of a wheel in the repo.
    """
    settings = settings or get_settings()
    if to not in TARGETS:
        raise JobError(f"cannot export to {to!r}: use one of {', '.join(TARGETS)}")
    _check_options(to, operator, kernel, install)
    job = get_job(settings.project_root, name)
    root = settings.project_root.resolve()
    if to == "airflow":
        if (operator or "bash") == "papermill":
            return airflow_papermill_dag(job, root, tracking_env(settings), check_kernel(kernel))
        return airflow_dag(job, root, llmops_executable(), tracking_env(settings))
    if to == "cron":
        return crontab_line(job, root, llmops_executable(), tracking_env(settings), settings.home.resolve())
    return github_workflow(job, root, install_requirement(install, root))


def _check_options(to: str, operator: str | None, kernel: str | None, install: str | None) -> None:
    if operator is not None and to != "airflow":
        raise JobError("--airflow-operator is for --to airflow")
    if operator is not None and operator not in AIRFLOW_OPERATORS:
        raise JobError(f"Airflow operator {operator!r} is unknown: use {' or '.join(AIRFLOW_OPERATORS)}")
    if kernel is not None and operator != "papermill":
        raise JobError("--kernel is for --to airflow --airflow-operator papermill (the other exports run the "
                       "job's own kernel)")
    if install is not None and to != "github-actions":
        raise JobError("--install is for --to github-actions (the other exports run this venv's llmops-lab)")


# -- what every export needs ------------------------------------------------------------------------

def llmops_executable() -> str:
    """The absolute path of this environment's ``llmops-lab`` (cron and Airflow have another PATH)."""
    candidate = Path(sys.executable).parent / "llmops-lab"
    if candidate.is_file():
        return str(candidate.absolute())
    found = shutil.which("llmops-lab")
    if found:
        return str(Path(found).absolute())
    raise JobError(f"no llmops-lab executable beside {sys.executable} or on PATH: export from the project's "
                   "venv, where llmops-lab is installed")


def tracking_env(settings: Settings) -> dict[str, str]:
    """``MLFLOW_TRACKING_URI`` (and ``LLMOPS_HOME`` if set) for a run started outside this shell."""
    uri = settings.resolved_tracking_uri()
    parts = urlsplit(uri)
    if parts.password or (parts.username and parts.scheme.startswith("http")):
        raise JobError("the tracking URI carries credentials: set MLFLOW_TRACKING_URI without them and pass "
                       "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD in the scheduler's environment")
    env = {"MLFLOW_TRACKING_URI": uri}
    if settings.home.resolve() != (settings.project_root / ".llmops").resolve():
        env["LLMOPS_HOME"] = str(settings.home.resolve())
    return env


def _words(job: Job) -> str:
    return f"{job.schedule} = {cron.describe(job.schedule)} ({job.timezone})" if job.schedule else "manual"


# -- Airflow ----------------------------------------------------------------------------------------

def _dag_head(job: Job, root: Path, env: dict[str, str]) -> str:
    """The constants of both DAG forms: the project, and the environment that points at its store."""
    default_store = env["MLFLOW_TRACKING_URI"] == f"sqlite:///{root / '.llmops' / 'mlflow.db'}"
    uri = ('"sqlite:///" + os.path.join(PROJECT, ".llmops", "mlflow.db")' if default_store
           else repr(env["MLFLOW_TRACKING_URI"]))
    extra = "".join(f", {k!r}: {v!r}" for k, v in env.items() if k != "MLFLOW_TRACKING_URI")
    return (f'PROJECT = os.environ.get("LLMOPS_PROJECT", {str(root)!r})\n'
            "# The project's MLflow store (not .llmops/ under the worker's cwd), set for the task.\n"
            f'ENV = {{"MLFLOW_TRACKING_URI": {uri}{extra}}}\n')


def _dag_args(job: Job, retries: int, timeout: float) -> str:
    schedule = repr(job.schedule) if job.schedule else "None"
    return (f"    dag_id={f'llmops_{job.name}'!r},\n"
            f"    description={f'llmops-lab job {job.name}: {job.notebook}'!r},\n"
            f"    schedule={schedule},\n"
            f"    start_date=pendulum.datetime(2024, 1, 1, tz={job.timezone!r}),\n"
            "    catchup=False,  # missed runs are not replayed as a burst\n"
            "    max_active_runs=1,  # one execution of the job at a time\n"
            f'    default_args={{"retries": {retries}, "execution_timeout": timedelta(seconds={timeout:g})}},\n'
            '    tags=["llmops-lab"],\n')


def airflow_dag(job: Job, root: Path, executable: str, env: dict[str, str]) -> str:
    """A DAG whose task (BashOperator) runs ``llmops-lab jobs run NAME --trigger airflow`` in the project."""
    timeout = job.timeout * (job.retries + 1) + 300  # the job retries itself; report and MLflow afterwards
    return f'''"""Airflow DAG for the llmops-lab job {job.name!r} ({_words(job)}).

Generated by `llmops-lab jobs export {job.name} --to airflow`; the job is defined in llmops_jobs.toml.
Its task runs `llmops-lab jobs run {job.name} --trigger airflow` in the project (apache-airflow-providers-
standard's BashOperator): papermill with the job's parameters, kernel, timeout and retries, then its
recorded metrics, regression gate, HTML report, MLflow run and a row of `llmops-lab jobs history`.
The task fails when the execution fails or breaches its gate (Airflow does not retry it: the job does).
A team server: set MLFLOW_TRACKING_URI below and MLFLOW_TRACKING_USERNAME/PASSWORD on the workers.
Checked out elsewhere on the workers: set LLMOPS_PROJECT and LLMOPS_LAB (the venv's llmops-lab) there.
"""
import os
import shlex
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

{_dag_head(job, root, env)}LLMOPS_LAB = os.environ.get("LLMOPS_LAB", {executable!r})

with DAG(
{_dag_args(job, 0, timeout)}) as dag:
    run_job = BashOperator(
        task_id="run_job",
        bash_command=f"exec {{shlex.quote(LLMOPS_LAB)}} jobs run {job.name} --trigger airflow",
        cwd=PROJECT,
        env=ENV,
        append_env=True,  # PATH, HOME and the workers' MLFLOW_TRACKING_USERNAME/PASSWORD stay
    )
'''


def check_kernel(kernel: str | None) -> str:
    """The papermill DAG's kernel: a kernelspec of the project's venv that exists here."""
    how = f"{shlex.quote(sys.executable)} -m ipykernel install --user --name NAME"
    if not kernel:
        raise JobError(f"--airflow-operator papermill needs --kernel NAME, a kernelspec of the project's venv "
                       f"(create it with: {how})")
    if kernel == "python3":
        raise JobError(f"kernel 'python3' is whatever Python the Airflow worker runs: register the project's venv "
                       f"under a name of its own: {how}")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        raise JobError(f"no kernelspec named {kernel!r}: create it with {how.replace('NAME', kernel)}") from None
    python = spec.argv[0] if spec.argv else ""
    if not Path(python).is_absolute():
        raise JobError(f"kernelspec {kernel!r} starts {python!r}, not a venv's python by absolute path: "
                       f"create it with {how.replace('NAME', kernel)}")
    return kernel


def airflow_papermill_dag(job: Job, root: Path, env: dict[str, str], kernel: str) -> str:
    """A DAG whose task (PapermillOperator) runs the notebook alone in ``kernel``, logging to the project."""
    params = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in job.parameters.items()) + "}"
    return f'''"""Airflow DAG for the llmops-lab job {job.name!r} ({_words(job)}), notebook only.

Generated by `llmops-lab jobs export {job.name} --to airflow --airflow-operator papermill --kernel {kernel}`.
A PapermillOperator runs {job.notebook} with the job's parameters in the kernel {kernel!r}, which must be
a kernelspec of the project's venv on the workers:
    /path/to/project/.venv/bin/python -m ipykernel install --user --name {kernel}
Its %%llm calls are logged to the project's MLflow store (ENV below), but there is no regression gate,
no job run and no `llmops-lab jobs history` row: the default export (`--airflow-operator bash`) has them.
"""
import os
from datetime import timedelta

import pendulum
from airflow.providers.papermill.operators.papermill import PapermillOperator

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

{_dag_head(job, root, env)}NOTEBOOK = os.path.join(PROJECT, {job.notebook!r})


class ProjectPapermillOperator(PapermillOperator):
    """The kernel inherits the project's tracking URI and learns its notebook's path."""

    def execute(self, context):
        os.environ.update(ENV, LLMOPS_NOTEBOOK=NOTEBOOK)
        os.chdir(os.path.dirname(NOTEBOOK))  # the kernel finds the project (and its .llmops) from here
        os.makedirs(os.path.dirname(self.output_nb), exist_ok=True)
        return super().execute(context)


with DAG(
{_dag_args(job, job.retries, job.timeout)}) as dag:
    run_notebook = ProjectPapermillOperator(
        task_id="run_notebook",
        input_nb=NOTEBOOK,
        output_nb=os.path.join(PROJECT, ".llmops", "jobs", {job.name!r}, "airflow-{{{{ ts_nodash }}}}.ipynb"),
        parameters={params},
        kernel_name={kernel!r},
    )
'''


# -- cron -------------------------------------------------------------------------------------------

def crontab_line(job: Job, root: Path, executable: str, env: dict[str, str], home: Path) -> str:
    """A crontab entry that works from a fresh checkout: it makes its log folder, then runs the job."""
    if not job.schedule:
        raise JobError(f"job {job.name} has no schedule: promote it again with --schedule to export a crontab line")
    schedule = cron.ALIASES.get(job.schedule, job.schedule)
    folder = home / "jobs" / job.name
    q = shlex.quote
    assignments = " ".join(f"{k}={q(v)}" for k, v in env.items())
    run = (f"mkdir -p {q(str(folder))} && cd {q(str(root))} && {assignments} {q(executable)} jobs run "
           f"{q(job.name)} --trigger cron >> {q(str(folder / 'cron.log'))} 2>&1")
    run = run.replace("%", "\\%")  # % ends the command in crontab
    return (f"# llmops-lab job {job.name}: {job.notebook}, {cron.describe(job.schedule)} ({job.timezone})\n"
            f"# CRON_TZ is honoured by cronie; other crons use the system timezone.\n"
            f"CRON_TZ={job.timezone}\n"
            f"{schedule} {run}\n")


# -- GitHub Actions ---------------------------------------------------------------------------------

def install_requirement(spec: str | None, root: Path) -> str:
    """What the workflow gives pip: llmops-lab with its [local] extra, pinned, from git or from a wheel."""
    spec = (spec or f"llmops-lab=={__version__}").strip()
    if _PIN.match(spec):
        return f"llmops-lab[local]=={_PIN.match(spec).group(1)}"
    if spec.startswith("git+") and "@" in urlsplit(spec[4:]).netloc:
        raise JobError("--install: that git URL carries credentials, which a workflow file must never hold: "
                       "use a public URL or a wheel in the repository")
    if _GIT.match(spec):
        return f"llmops-lab[local] @ {spec}"
    if spec.endswith(".whl"):
        path = Path(spec)
        if path.is_absolute() or ".." in path.parts or not _WHEEL.match(path.name):
            raise JobError(f"--install {spec}: give the path of an llmops_lab-*.whl inside the repository, "
                           "relative to its root (the runner has only the checkout)")
        if not (root / path).is_file():
            raise JobError(f"--install {spec}: no such wheel under {root}: build it there and commit it")
        return f"./{path.as_posix()}[local]"
    raise JobError(f"--install {spec!r} is not valid: use llmops-lab==VERSION, git+https://HOST/PATH[@REF] "
                   "or the path of an llmops_lab-*.whl in the repository")


def _summary_script(job: Job) -> str:
    """The step that writes the job summary: the last execution, and where its MLflow store is."""
    artifact = f"llmops-job-{job.name}"
    return "\n".join([
        "{",
        f'  echo "### llmops-lab job {job.name}"',
        "  echo '```'",
        f"  llmops-lab jobs history {job.name} --limit 1 || true",
        "  echo '```'",
        '  if [ -z "$MLFLOW_TRACKING_URI" ]; then',
        f'    echo "No team server (secret MLFLOW_TRACKING_URI unset): the MLflow store is .llmops/mlflow.db, '
        f'uploaded with the executed notebook, the report and .llmops/jobs.db as the artifact \\`{artifact}\\` '
        f'of this run (unzip it at the project root, then \\`llmops-lab ui\\`), and cached for the next run."',
        "  else",
        '    echo "Runs are in the MLflow server of the secret MLFLOW_TRACKING_URI (experiment of '
        f'{job.notebook}, tag llmops.job = {job.name})."',
        "  fi",
        '} >> "$GITHUB_STEP_SUMMARY"',
        ""])


def _block(key: str, lines: list[str], indent: str = "          ") -> list[str]:
    return [f"{indent}{key}: |", *[f"{indent}  {line}" for line in lines]]


def github_workflow(job: Job, root: Path, requirement: str) -> str:
    q = json.dumps
    minutes = math.ceil(job.timeout * (job.retries + 1) / 60) + 20  # + install (a first llama.cpp build)
    python = ".".join(map(str, sys.version_info[:2]))
    digest = hashlib.sha256(f"{requirement} {PORTABLE_CMAKE_ARGS}".encode()).hexdigest()[:12]
    store = [".llmops/*.db*", ".llmops/artifacts/", ".llmops/spool/"]
    lines = [f"# GitHub Actions workflow for the llmops-lab job {job.name} "
             f"(generated by `llmops-lab jobs export {job.name} --to github-actions`).",
             f"# Save it as .github/workflows/llmops-{job.name}.yml. It installs {requirement}; the job fails",
             "# when the execution fails or breaches its regression gate. Team server: set the repository",
             "# secrets MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD; without them",
             "# the local MLflow store and the job's outputs are uploaded as an artifact and cached."]
    if job.schedule and job.timezone != "UTC":
        lines.append(f"# Note: GitHub runs schedules in UTC; this job's timezone is {job.timezone}: adjust the cron.")
    lines += [f"name: {q('llmops job ' + job.name)}", '"on":']
    if job.schedule:
        lines += ["  schedule:", f"    - cron: {q(cron.ALIASES.get(job.schedule, job.schedule))}"]
    lines += ["  workflow_dispatch: {}",
              "concurrency:", f"  group: {q('llmops-job-' + job.name)}", "  cancel-in-progress: false",
              "jobs:", f"  {job.name}:", "    runs-on: ubuntu-latest", f"    timeout-minutes: {minutes}",
              "    env:", "      OPENAI_API_KEY: ${{ secrets.OPENAI_API_KEY }}",
              *[f"      {s}: ${{{{ secrets.{s} }}}}" for s in TRACKING_SECRETS],
              "    steps:",
              "      - uses: actions/checkout@v4",
              "      - uses: actions/setup-python@v5",
              "        with:",
              f"          python-version: {q(python)}",
              "      - name: Cache pip and the llama.cpp build",
              "        uses: actions/cache@v4",
              "        with:",
              *_block("path", ["~/.cache/pip", "~/.cache/llmops-lab"]),
              f"          key: {q(f'llmops-pip-${{{{ runner.os }}}}-py{python}-{digest}')}",
              f"          restore-keys: {q(f'llmops-pip-${{{{ runner.os }}}}-py{python}-')}",
              "      - name: Install llmops-lab (llama-cpp-python built portable, so the cached wheel runs anywhere)",
              "        env:",
              f"          CMAKE_ARGS: {q(PORTABLE_CMAKE_ARGS)}",
              f"        run: {q('python -m pip install ' + shlex.quote(requirement))}"]
    if (root / "requirements.txt").is_file():
        lines += ["      - name: Install the notebook's requirements",
                  f"        run: {q('python -m pip install -r requirements.txt')}"]
    lines += ["      - name: Restore the job history (the gate's baseline) and the local MLflow store",
              "        uses: actions/cache@v4",
              "        with:",
              *_block("path", store),
              f"          key: {q('llmops-store-' + job.name + '-${{ github.run_id }}')}",
              f"          restore-keys: {q('llmops-store-' + job.name + '-')}",
              f"      - name: {q('Run job ' + job.name)}",
              f"        run: {q(f'llmops-lab jobs run {job.name} --trigger ci')}",
              "      - name: Job summary",
              "        if: always()",
              *_block("run", _summary_script(job).splitlines(), "        "),
              "      - name: Upload the job's outputs and the local MLflow store (no team server)",
              "        if: always() && env.MLFLOW_TRACKING_URI == ''",
              "        uses: actions/upload-artifact@v4",
              "        with:",
              f"          name: {q('llmops-job-' + job.name)}",
              *_block("path", [f".llmops/jobs/{job.name}/", *store[:2]]),
              "          include-hidden-files: true  # .llmops/ is a hidden folder",
              "          if-no-files-found: ignore"]
    return "\n".join(lines) + "\n"
