"""Jobs without a kernel: toml, cron maths, gate, parameters, record, store, export, scheduler (fake clock)."""
from __future__ import annotations

import subprocess
import sys
import threading
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llmops_lab.jobs import cron, gate as gate_mod
from llmops_lab.jobs.definition import Gate, Job, get_job, load_jobs, make_gate, save_jobs
from llmops_lab.exceptions import JobDefinitionError, JobError, JobNotFoundError, NotebookError
from llmops_lab.jobs.store import HistoryStore

NOTEBOOKS = Path(__file__).parent / "notebooks"
UTC = timezone.utc


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- llmops_jobs.toml -------------------------------------------------------------------------------

def test_toml_round_trip_is_stable_and_readable(tmp_path):
    jobs = {
        "zeta": Job("zeta", "nb/z.ipynb"),
        "nightly": Job("nightly", "notebooks/04 nightly.ipynb", "0 2 * * *", "Europe/Paris", "python3", 1800, 1,
                       {"model": 'openai:"gpt"\n\\ é', "threshold": 0.8, "tiny": 1e-05, "n": 3, "flag": True,
                        "tags": ["a", "b"], "opts": {"k": 1.0}},
                       (Gate("accuracy", min=0.8, max_drop=0.05),)),
    }
    path = save_jobs(tmp_path, jobs)
    text = path.read_text()
    assert text.index("[jobs.nightly]") < text.index("[jobs.zeta]")  # sorted by name
    assert 'gate = {metric = "accuracy", min = 0.8, max_drop = 0.05}' in text
    assert load_jobs(tmp_path) == jobs
    save_jobs(tmp_path, load_jobs(tmp_path))
    assert path.read_text() == text  # byte-stable: no diff noise in git
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_toml_accepts_a_hand_written_file_with_a_gate_list(tmp_path):
    (tmp_path / "llmops_jobs.toml").write_text(
        '[jobs.a]\nnotebook = "a.ipynb"\nschedule = "@daily"\n'
        'gate = [{metric = "accuracy", min = 0.5}, {metric = "latency_ms", max = 900}]\n')
    job = get_job(tmp_path, "a")
    assert job.schedule == "@daily" and job.timezone == "UTC" and job.retries == 0
    assert [g.metric for g in job.gates] == ["accuracy", "latency_ms"] and job.gates[1].max == 900


@pytest.mark.parametrize("body, message", [
    ("[jobs.a\n", "is not valid TOML"),
    ('[jobs.a]\nnotebook = "a.ipynb"\nschedul = "0 2 * * *"\n', "unknown key 'schedul' (did you mean 'schedule'?)"),
    ('[jobs.a]\nnotebook = "a.ipynb"\nschedule = "0 25 * * *"\n', "not a valid cron expression"),
    ('[jobs."bad name"]\nnotebook = "a.ipynb"\n', "job name 'bad name' is not valid"),
    ('[jobs.a]\nnotebook = "a.ipynb"\ntimezone = "Mars/Base"\n', "timezone 'Mars/Base' is unknown"),
    ('[jobs.a]\nnotebook = "a.ipynb"\ngate = {metric = "x"}\n', "needs min, max or max_drop"),
    ('[jobs.a]\nnotebook = "a.ipynb"\nretries = 99\n', "retries 99 is not valid"),
])
def test_toml_errors_name_the_file_and_the_problem(tmp_path, body, message):
    (tmp_path / "llmops_jobs.toml").write_text(body)
    with pytest.raises(JobDefinitionError) as err:
        load_jobs(tmp_path)
    assert str(err.value).startswith("llmops_jobs.toml") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_job_suggests_a_close_name(tmp_path):
    save_jobs(tmp_path, {"nightly": Job("nightly", "a.ipynb")})
    with pytest.raises(JobNotFoundError, match="no job named 'nigthly'.*did you mean 'nightly'"):
        get_job(tmp_path, "nigthly")


# -- cron maths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, words", [
    ("0 2 * * *", "at 02:00, every day"),
    ("*/15 * * * *", "every 15 minutes"),
    ("30 9 * * 1-5", "at 09:30, on Monday through Friday"),
    ("0 9,18 * * mon,wed", "at 09:00 and 18:00, on Monday and Wednesday"),
    ("0 0 1 * *", "at 00:00, on day 1 of the month"),
    ("@hourly", "every hour"),
    ("5 4 * 1 *", "at 04:05, every day, in January"),
    ("0 */2 * * *", "every 2 hours"),  # shapes cron-descriptor says in words, where ours went field by field
    ("0 0 L * *", "at 00:00, on the last day of the month"),
    ("0 12 * * 5#3", "at 12:00, on the third Friday of the month"),
    ("not cron", "cron not cron"),
])
def test_cron_in_words(expr, words):
    assert cron.describe(expr) == words


def test_next_runs_are_in_the_jobs_timezone():
    runs = cron.next_runs("0 2 * * *", "America/New_York", at(2026, 1, 10, 12), 3)
    assert [r.astimezone(UTC).hour for r in runs] == [7, 7, 7]  # 02:00 EST
    assert [r.day for r in runs] == [11, 12, 13]


def test_due_counts_missed_runs_and_returns_the_latest_once():
    assert cron.due("0 2 * * *", "UTC", at(2026, 1, 1, 3), at(2026, 1, 1, 23)) is None
    d = cron.due("0 2 * * *", "UTC", at(2026, 1, 1, 3), at(2026, 1, 4, 10))
    assert d.at == at(2026, 1, 4, 2) and d.missed == 3
    exactly = cron.due("0 2 * * *", "UTC", at(2026, 1, 1, 3), at(2026, 1, 2, 2))
    assert exactly.at == at(2026, 1, 2, 2) and exactly.missed == 1
    assert cron.due("* * * * *", "UTC", at(2026, 1, 1), at(2026, 3, 1)).missed == cron.MISSED_COUNT_CAP


# -- gate -------------------------------------------------------------------------------------------

def test_gate_min_max_and_drop():
    g = Gate("accuracy", min=0.8, max_drop=0.05)
    ok = gate_mod.evaluate([g], {"accuracy": 0.9}, {"accuracy": 0.92}, "execution 1")
    assert ok.passed and "within max_drop" in ok.reason
    low = gate_mod.evaluate([g], {"accuracy": 0.75}, {"accuracy": 0.78})
    assert not low.passed and "accuracy 0.75 < min 0.8" in low.reason
    drop = gate_mod.evaluate([g], {"accuracy": 0.85}, {"accuracy": 0.95}, "execution 3")
    assert not drop.passed and "dropped 0.1 from baseline 0.95 (execution 3)" in drop.reason
    first = gate_mod.evaluate([g], {"accuracy": 0.85}, None)
    assert first.passed and "no baseline yet" in first.reason
    cap = gate_mod.evaluate([Gate("latency_ms", max=500)], {"latency_ms": 700})
    assert not cap.passed and "latency_ms 700 > max 500" in cap.reason


def test_gate_with_a_pinned_baseline_needs_it():
    g = Gate("accuracy", max_drop=0.05, baseline="a" * 32)
    missing = gate_mod.evaluate([g], {"accuracy": 0.9}, None, f"run {'a' * 32} not found", require_baseline=True)
    assert not missing.passed and "the pinned baseline (run aaaa" in missing.reason and "not found" in missing.reason
    assert gate_mod.evaluate([g], {"accuracy": 0.9}, {"accuracy": 0.92}, "run aaaaaaaa", require_baseline=True).passed


def test_gate_fails_closed_when_the_metric_was_not_recorded():
    verdict = gate_mod.evaluate([Gate("accuracy", min=0.1)], {"other": 1.0})
    assert not verdict.passed and "accuracy was not recorded" in verdict.reason


def test_gate_spec_validation():
    assert make_gate({"metric": "a", "max_drop": 0.1}).baseline == "previous"
    with pytest.raises(JobDefinitionError, match="baseline"):
        make_gate({"metric": "a", "max_drop": 0.1, "baseline": "yesterday"})
    with pytest.raises(JobDefinitionError, match="unknown key 'minimum'"):
        make_gate({"metric": "a", "minimum": 0.1})


# -- parameters -------------------------------------------------------------------------------------

def test_parameters_are_typed_by_the_notebook_defaults():
    from llmops_lab.jobs.promotion import coerce, parse_assignments, type_parameters

    info = lambda default, kind="None": {"default": default, "inferred_type_name": kind}  # noqa: E731
    assert parse_assignments(["model=openai:gpt-4o-mini", "threshold=0.8", "x="]) == \
        {"model": "openai:gpt-4o-mini", "threshold": "0.8", "x": ""}
    assert coerce("threshold", "0.8", info("0.5")) == 0.8 and isinstance(coerce("t", "1", info("0.5")), float)
    assert coerce("n", "3", info("2")) == 3
    assert coerce("flag", "false", info("True")) is False
    assert coerce("model", "openai:gpt-4o-mini", info('"local:x"')) == "openai:gpt-4o-mini"
    assert coerce("tags", '["a", "b"]', info("[]")) == ["a", "b"]
    assert coerce("x", "0.25", info("None")) == 0.25 and coerce("x", "abc", info("None")) == "abc"
    assert coerce("k", "7", info("7.0", "int")) == 7  # an annotation wins over the default's type
    for name, value, default in [("threshold", "high", "0.5"), ("n", "2.5", "2"), ("flag", "maybe", "True"),
                                 ("tags", "a,b", "[]"), ("threshold", "nan", "0.5"), ("model", 3, '"m"')]:
        with pytest.raises(JobDefinitionError, match=f"parameter {name}=.* is not a valid"):
            coerce(name, value, info(default))
    with pytest.raises(JobDefinitionError, match="is not NAME=VALUE"):
        parse_assignments(["threshold"])
    declared = {"greeting": info('"hello"'), "repeat": info("2")}
    assert type_parameters({"repeat": "3"}, declared, "nb.ipynb") == {"repeat": 3}
    with pytest.raises(JobDefinitionError, match=r"parameter 'greting' is not in the parameters cell of nb.ipynb "
                                                 r"\(did you mean 'greeting'\?\): it defines greeting, repeat"):
        type_parameters({"greting": "hi"}, declared, "nb.ipynb")


def test_add_parameters_cell_tags_or_moves_literal_assignments():
    import nbformat

    from llmops_lab.jobs.promotion import literal_assignments, parameters_cell, with_parameters_cell

    assert [n for n, _, _ in literal_assignments('%load_ext x\nimport os\na = 1\nb: float = -0.5\nc = os.sep\n'
                                                 'd = [1, "x"]\n')] == ["a", "b", "d"]
    nb = nbformat.read(str(NOTEBOOKS / "no_params.ipynb"), as_version=4)
    assert parameters_cell(nb) is None
    new, names = with_parameters_cell(nb, "no_params.ipynb")
    assert names == ["model", "threshold"] and parameters_cell(nb) is None  # the original is untouched
    index = parameters_cell(new)
    assert index == 0 and 'model = "local:smollm2-135m"\nthreshold = 0.5' in new.cells[0].source
    assert new.cells[1].source == "import math"  # the rest stays, in order
    only = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# knobs\nx = 1\ny = 'a'")])
    tagged, _ = with_parameters_cell(only, "only.ipynb")
    assert len(tagged.cells) == 1 and tagged.cells[0].metadata["tags"] == ["parameters"]
    with pytest.raises(NotebookError, match="no `name = value` assignments"):
        with_parameters_cell(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]), "x.ipynb")


# -- record -----------------------------------------------------------------------------------------

def test_record_outside_a_job_keeps_and_prints(capsys, monkeypatch):
    import llmops_lab
    from llmops_lab.jobs.record import recorded

    monkeypatch.delenv("LLMOPS_JOB_METRICS", raising=False)
    assert llmops_lab.record("accuracy", 0.91) is None
    llmops_lab.record("passed", True)
    assert capsys.readouterr().out == "accuracy = 0.91\npassed = 1\n"
    assert recorded()["accuracy"] == 0.91 and recorded()["passed"] == 1.0
    with pytest.raises(llmops_lab.ConfigError, match="must be a number"):
        llmops_lab.record("accuracy", "high")
    with pytest.raises(llmops_lab.ConfigError, match="metric name"):
        llmops_lab.record("bad:name", 1)


def test_record_inside_a_job_appends_json_lines(tmp_path, monkeypatch, capsys):
    from llmops_lab.jobs.record import read_metrics, record

    path = tmp_path / "m.jsonl"
    monkeypatch.setenv("LLMOPS_JOB_METRICS", str(path))
    monkeypatch.setenv("LLMOPS_JOB", "nightly")
    record("accuracy", 0.5)
    record("loss", 0.1, step=4)
    assert "accuracy = 0.5  (recorded for job nightly)" in capsys.readouterr().out
    with open(path, "a") as handle:
        handle.write('{"name": "torn", "val')  # a kernel killed mid-write
    rows = read_metrics(path)
    assert [(r["name"], r["value"], r["step"]) for r in rows] == [("accuracy", 0.5, None), ("loss", 0.1, 4)]
    assert all(isinstance(r["ts"], float) for r in rows)


def test_public_api_names_are_the_functions():
    import llmops_lab.jobs.exports  # noqa: F401 - submodules never shadow the API
    import llmops_lab.jobs.promotion  # noqa: F401
    from llmops_lab import jobs

    for name in jobs.__all__:
        assert getattr(jobs, name) is not None
    assert callable(jobs.promote) and callable(jobs.export) and callable(jobs.record)
    assert jobs.promote.__module__ == "llmops_lab.jobs.promotion"


def test_imports_stay_light():
    code = ("import sys, llmops_lab, llmops_lab.jobs, llmops_lab.jobs.record, llmops_lab.cli;"
            "llmops_lab.cli.build_parser();"
            "heavy = [m for m in ('papermill', 'mlflow', 'nbformat', 'nbconvert', 'croniter', 'pandas')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


# -- history store ----------------------------------------------------------------------------------

def test_history_store(tmp_path):
    store = HistoryStore(tmp_path / "jobs.db")
    first = store.start("a", "manual", {"x": 1}, "a.ipynb")
    first.status, first.metrics, first.run_id = "completed", {"accuracy": 0.9}, "r" * 32
    first.gate = {"passed": True, "reason": "ok", "checks": [], "baseline": None}
    store.update(first)
    second = store.start("a", "schedule", {}, "a.ipynb", scheduled_for=at(2026, 1, 1, 2))
    store.start("b", "manual", {}, "b.ipynb")
    assert [e.id for e in store.history("a")] == [second.id, first.id]
    assert store.latest("a", ("completed",)).metrics == {"accuracy": 0.9}
    assert store.latest("a", ("completed",), before=first.id) is None
    assert store.find_by_run("r" * 32).id == first.id
    assert [e.job for e in store.running()] == ["a", "b"]
    assert store.get(second.id).scheduled_for == at(2026, 1, 1, 2)
    assert store.last_due("a") is None
    store.set_last_due("a", at(2026, 1, 1, 2))
    store.set_last_due("a", at(2026, 1, 2, 2))
    assert HistoryStore(tmp_path / "jobs.db").last_due("a") == at(2026, 1, 2, 2)


def test_a_running_job_cannot_start_twice(project):
    import llmops_lab
    from filelock import FileLock

    from llmops_lab.jobs import JobBusyError, run_job

    settings = llmops_lab.get_settings()
    save_jobs(project, {"busy": Job("busy", "nb.ipynb")})
    folder = settings.home / "jobs" / "busy"
    folder.mkdir(parents=True)
    with FileLock(str(folder / ".lock")):  # another process is running it
        with pytest.raises(JobBusyError, match="job busy is already running: one execution of a job at a time"):
            run_job("busy")
    assert HistoryStore(settings.home / "jobs.db").history("busy") == []


# -- export -----------------------------------------------------------------------------------------

@pytest.fixture
def nightly(bare_project):
    import llmops_lab

    job = Job("nightly", "notebooks/04_nightly_eval.ipynb", "0 2 * * *", "Europe/Paris", "python3", 1800, 1,
              {"model": "openai:gpt-4o-mini", "threshold": 0.8}, (Gate("accuracy", min=0.8),))
    save_jobs(bare_project, {"nightly": job, "manual": Job("manual", "notebooks/x.ipynb")})
    return llmops_lab.get_settings()


def _stub_airflow(monkeypatch, captured):
    """Just enough of airflow (DAG, BashOperator, PapermillOperator) and pendulum to exec an exported DAG."""
    class DAG:
        def __init__(self, **kwargs):
            captured["dag"] = kwargs

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Operator:
        def __init__(self, **kwargs):
            captured["task"] = kwargs
            captured["operator"] = self
            self.output_nb = kwargs.get("output_nb")

        def execute(self, context):
            captured["executed"] = context

    names = ["airflow", "airflow.sdk", "airflow.providers", "airflow.providers.standard",
             "airflow.providers.standard.operators", "airflow.providers.standard.operators.bash",
             "airflow.providers.papermill", "airflow.providers.papermill.operators",
             "airflow.providers.papermill.operators.papermill", "pendulum"]
    modules = {name: types.ModuleType(name) for name in names}
    modules["airflow.sdk"].DAG = DAG
    modules["airflow.providers.standard.operators.bash"].BashOperator = Operator
    modules["airflow.providers.papermill.operators.papermill"].PapermillOperator = Operator
    modules["pendulum"].datetime = lambda *a, tz=None: ("datetime", a, tz)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def _exec_dag(text, monkeypatch) -> dict:
    captured: dict = {}
    _stub_airflow(monkeypatch, captured)
    exec(compile(text, "llmops_nightly.py", "exec"), {"__name__": "dag_module"})
    return captured


def test_export_airflow_dag_runs_the_job_with_its_tracking_uri(nightly, monkeypatch):
    import shlex

    from llmops_lab.jobs import export

    monkeypatch.delenv("LLMOPS_PROJECT", raising=False)
    monkeypatch.delenv("LLMOPS_LAB", raising=False)
    captured = _exec_dag(export("nightly", "airflow"), monkeypatch)
    dag, task = captured["dag"], captured["task"]
    assert dag["dag_id"] == "llmops_nightly" and dag["schedule"] == "0 2 * * *" and not dag["catchup"]
    assert dag["start_date"][2] == "Europe/Paris" and dag["max_active_runs"] == 1
    # the job retries itself: Airflow runs the task once, for all its attempts
    assert dag["default_args"] == {"retries": 0, "execution_timeout": timedelta(seconds=1800 * 2 + 300)}
    words = shlex.split(task["bash_command"])
    assert words[0] == "exec" and words[1] == str(Path(sys.executable).parent / "llmops-lab")
    assert words[2:] == ["jobs", "run", "nightly", "--trigger", "airflow"]
    assert task["cwd"] == str(nightly.project_root.resolve()) and task["append_env"] is True
    assert task["env"] == {"MLFLOW_TRACKING_URI": nightly.resolved_tracking_uri()}


def test_export_airflow_dag_follows_the_project_and_a_team_server(nightly, monkeypatch):
    from llmops_lab.jobs import export

    monkeypatch.setenv("LLMOPS_PROJECT", "/srv/checkout")
    task = _exec_dag(export("nightly", "airflow"), monkeypatch)["task"]
    assert task["cwd"] == "/srv/checkout" and task["env"]["MLFLOW_TRACKING_URI"] == \
        "sqlite:////srv/checkout/.llmops/mlflow.db"
    nightly.tracking_uri = "http://mlflow.internal:5000"
    task = _exec_dag(export("nightly", "airflow", nightly), monkeypatch)["task"]
    assert task["env"] == {"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    nightly.tracking_uri = "http://ada:s3cret@mlflow.internal:5000"
    with pytest.raises(JobError, match="carries credentials") as err:
        export("nightly", "airflow", nightly)
    assert "s3cret" not in str(err.value)


def _kernelspec(folder: Path, name: str, python: str) -> None:
    import json

    (folder / "kernels" / name).mkdir(parents=True)
    (folder / "kernels" / name / "kernel.json").write_text(json.dumps(
        {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": name,
         "language": "python"}))


def test_export_airflow_papermill_dag_needs_a_kernel_of_the_project(nightly, monkeypatch, tmp_path):
    import os

    from llmops_lab.jobs import export

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    _kernelspec(tmp_path / "jupyter", "llmops-proj", sys.executable)
    _kernelspec(tmp_path / "jupyter", "bare", "python")
    for kernel, message in [(None, "needs --kernel NAME, a kernelspec of the project's venv"),
                            ("python3", "kernel 'python3' is whatever Python the Airflow worker runs"),
                            ("missing", "no kernelspec named 'missing': create it with .* -m ipykernel install "
                                        "--user --name missing"),
                            ("bare", "kernelspec 'bare' starts 'python', not a venv's python")]:
        with pytest.raises(JobError, match=message):
            export("nightly", "airflow", operator="papermill", kernel=kernel)
    text = export("nightly", "airflow", operator="papermill", kernel="llmops-proj")
    assert "ipykernel install --user --name llmops-proj" in text and "no regression gate" in text
    captured = _exec_dag(text, monkeypatch)
    dag, task = captured["dag"], captured["task"]
    assert dag["default_args"] == {"retries": 1, "execution_timeout": timedelta(seconds=1800)}
    root = nightly.project_root.resolve()
    assert task["kernel_name"] == "llmops-proj" and task["parameters"] == {"model": "openai:gpt-4o-mini",
                                                                           "threshold": 0.8}
    assert task["input_nb"] == str(root / "notebooks/04_nightly_eval.ipynb")
    assert task["output_nb"] == str(root / ".llmops/jobs/nightly/airflow-{{ ts_nodash }}.ipynb")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "elsewhere")
    monkeypatch.setenv("LLMOPS_NOTEBOOK", "before")  # the operator sets it: restored after the test
    monkeypatch.chdir(tmp_path)
    (root / "notebooks").mkdir()
    captured["operator"].execute({"ti": None})  # what the kernel will inherit
    assert captured["executed"] == {"ti": None} and os.environ["MLFLOW_TRACKING_URI"] == nightly.resolved_tracking_uri()
    assert os.environ["LLMOPS_NOTEBOOK"] == task["input_nb"] and Path.cwd() == root / "notebooks"
    assert (root / ".llmops/jobs/nightly").is_dir()


def test_export_options_belong_to_their_target(nightly):
    from llmops_lab.jobs import export

    for to, options, message in [("cron", {"install": "llmops-lab==0.1.0"}, "--install is for --to github-actions"),
                                 ("cron", {"operator": "bash"}, "--airflow-operator is for --to airflow"),
                                 ("airflow", {"operator": "docker"}, "Airflow operator 'docker' is unknown"),
                                 ("airflow", {"kernel": "k"}, "--kernel is for --to airflow --airflow-operator")]:
        with pytest.raises(JobError, match=message):
            export("nightly", to, **options)


def test_export_crontab_line(nightly):
    import shlex

    from croniter import croniter

    from llmops_lab.jobs import export

    text = export("nightly", "cron")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "CRON_TZ=Europe/Paris"
    fields = lines[1].split(None, 5)
    assert " ".join(fields[:5]) == "0 2 * * *" and croniter.is_valid(" ".join(fields[:5]))
    root = nightly.project_root.resolve()
    folder = root / ".llmops" / "jobs" / "nightly"
    assert shlex.split(fields[5]) == [
        "mkdir", "-p", str(folder), "&&", "cd", str(root), "&&",
        f"MLFLOW_TRACKING_URI={nightly.resolved_tracking_uri()}", str(Path(sys.executable).parent / "llmops-lab"),
        "jobs", "run", "nightly", "--trigger", "cron", ">>", str(folder / "cron.log"), "2>&1"]
    with pytest.raises(JobError, match="has no schedule"):
        export("manual", "cron")


def test_export_github_actions_workflow(nightly):
    import yaml

    from llmops_lab.jobs import export

    text = export("nightly", "github-actions")
    assert "GitHub runs schedules in UTC" in text  # the job's timezone is not UTC
    flow = yaml.safe_load(text)
    assert flow["on"]["schedule"] == [{"cron": "0 2 * * *"}] and "workflow_dispatch" in flow["on"]
    job = flow["jobs"]["nightly"]
    assert {k: job["env"][k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")} \
        == {k: f"${{{{ secrets.{k} }}}}" for k in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                                                   "MLFLOW_TRACKING_PASSWORD")}
    steps = job["steps"]
    runs = [s.get("run") for s in steps]
    assert "python -m pip install 'llmops-lab[local]==0.1.0'" in runs  # llmops-lab itself, not the project
    assert "llmops-lab jobs run nightly --trigger ci" in runs
    install = next(s for s in steps if s.get("run", "").startswith("python -m pip install"))
    assert install["env"]["CMAKE_ARGS"] == ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON "
                                            "-DGGML_F16C=ON -DGGML_BMI2=ON")
    caches = [s["with"]["path"].split() for s in steps if s.get("uses", "").startswith("actions/cache@")]
    assert caches == [["~/.cache/pip", "~/.cache/llmops-lab"],
                      [".llmops/*.db*", ".llmops/artifacts/", ".llmops/spool/"]]
    assert not any("cache" in s.get("with", {}) for s in steps)  # setup-python's cache: pip needs a requirements file
    assert job["timeout-minutes"] >= 1800 * 2 / 60
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always() && env.MLFLOW_TRACKING_URI == ''"
    assert upload["with"]["path"].split() == [".llmops/jobs/nightly/", ".llmops/*.db*", ".llmops/artifacts/"]
    assert upload["with"]["include-hidden-files"] is True
    summary = next(s for s in steps if s.get("name") == "Job summary")
    assert summary["if"] == "always()" and '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]
    manual = yaml.safe_load(export("manual", "github-actions"))
    assert "schedule" not in manual["on"]


def test_export_github_actions_install_is_validated(nightly):
    import yaml

    from llmops_lab.jobs import export

    def install(spec):
        steps = yaml.safe_load(export("nightly", "github-actions", install=spec))["jobs"]["nightly"]["steps"]
        return next(s["run"] for s in steps if s.get("run", "").startswith("python -m pip install"))

    root = nightly.project_root
    (root / "dist").mkdir()
    (root / "dist" / "llmops_lab-0.2.0-py3-none-any.whl").write_bytes(b"")
    assert install("llmops-lab==0.2.0") == "python -m pip install 'llmops-lab[local]==0.2.0'"
    assert install("git+https://github.com/acme/llmops-lab@v0.2.0") == \
        "python -m pip install 'llmops-lab[local] @ git+https://github.com/acme/llmops-lab@v0.2.0'"
    assert install("dist/llmops_lab-0.2.0-py3-none-any.whl") == \
        "python -m pip install './dist/llmops_lab-0.2.0-py3-none-any.whl[local]'"
    for spec, message in [("llmops-lab>=0.1", "is not valid: use llmops-lab==VERSION"),
                          ("requests==2.0", "is not valid"), ("-e .", "is not valid"),
                          ("git+https://tok3n@github.com/acme/llmops-lab", "carries credentials"),
                          ("git+ssh://github.com/acme/llmops-lab", "is not valid"),
                          (str(root / "dist" / "llmops_lab-0.2.0-py3-none-any.whl"), "inside the repository"),
                          ("dist/other-1.0-py3-none-any.whl", "inside the repository"),
                          ("dist/llmops_lab-9.9-py3-none-any.whl", "no such wheel")]:
        with pytest.raises(JobError, match=message) as err:
            export("nightly", "github-actions", install=spec)
        assert "\n" not in str(err.value) and "tok3n" not in str(err.value)


def test_export_rejects_an_unknown_target(nightly):
    from llmops_lab.jobs import export
    from llmops_lab.exceptions import JobError

    with pytest.raises(JobError, match="cannot export to 'jenkins'"):
        export("nightly", "jenkins")


# -- scheduler (injected clock, fake executor) ------------------------------------------------------

class Clock:
    def __init__(self, start: datetime):
        self.t = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += timedelta(seconds=seconds)


class FakeExecutor:
    def __init__(self, block: threading.Event | None = None, status: str = "completed"):
        self.calls: list[tuple[str, datetime]] = []
        self.block, self.status = block, status
        self.cancelled: list[str] = []

    def __call__(self, job, scheduled_for, cancel):
        self.calls.append((job.name, scheduled_for))
        if self.block is not None:
            while not self.block.is_set():
                if cancel.wait(0.01):
                    self.cancelled.append(job.name)
                    return "cancelled"
        return self.status


@pytest.fixture
def sched_env(project, monkeypatch):
    """A project with two scheduled jobs and one manual; the MLflow init is recorded, not done."""
    import llmops_lab
    from llmops_lab.tracking import clients

    save_jobs(project, {"nightly": Job("nightly", "n.ipynb", "0 2 * * *"),
                        "ny": Job("ny", "n.ipynb", "0 2 * * *", "America/New_York"),
                        "manual": Job("manual", "n.ipynb")})
    inits: list[str] = []
    monkeypatch.setattr(clients, "ensure_store", lambda uri: inits.append(uri))
    return llmops_lab.get_settings(), inits


def make_scheduler(settings, clock, executor, **kw):
    from llmops_lab.jobs import Scheduler

    lines: list[str] = []
    s = Scheduler(settings, now=clock.now, sleep=clock.sleep, executor=executor, echo=lines.append, **kw)
    return s, lines


def test_scheduler_first_sight_then_due_then_once_per_due_time(sched_env):
    settings, inits = sched_env
    clock, ex = Clock(at(2026, 1, 10, 1, 0)), FakeExecutor()
    s, lines = make_scheduler(settings, clock, ex)
    assert s.tick().started == [] and inits == [settings.resolved_tracking_uri()]  # store ready first
    clock.t = at(2026, 1, 10, 2, 0)
    assert s.tick().started == ["nightly"]
    s.join()
    assert ex.calls == [("nightly", at(2026, 1, 10, 2, 0))]
    assert s.tick().started == []  # not twice for the same due time
    clock.t = at(2026, 1, 10, 7, 0)  # 02:00 in New York
    assert s.tick().started == ["ny"]
    s.join()
    assert any(line.startswith("nightly: starting the run due at 2026-01-10 02:00") for line in lines)
    assert any(line.startswith("nightly: run due at") and line.endswith("completed") for line in lines)


def test_scheduler_runs_missed_runs_once_and_survives_restart(sched_env):
    settings, _ = sched_env
    store = HistoryStore(settings.home / "jobs.db")
    store.set_last_due("nightly", at(2026, 1, 1, 2))  # the scheduler was down since Jan 1st
    clock, ex = Clock(at(2026, 1, 5, 9, 30)), FakeExecutor()
    s, lines = make_scheduler(settings, clock, ex)
    assert s.tick().started == ["nightly"]
    s.join()
    assert ex.calls == [("nightly", at(2026, 1, 5, 2))]  # one run for the latest missed time, no burst
    assert any("4 run times missed while the scheduler was down; running once" in line for line in lines)
    again, _ = make_scheduler(settings, clock, ex)  # restart: the state is on disk
    assert again.tick().started == []
    clock.t = at(2026, 1, 6, 2, 0, 30)
    assert again.tick().started == ["nightly"]
    again.join()
    assert len(ex.calls) == 2


def test_scheduler_never_overlaps_a_job_with_itself(sched_env):
    settings, _ = sched_env
    HistoryStore(settings.home / "jobs.db").set_last_due("nightly", at(2026, 1, 1, 2))
    block = threading.Event()
    clock, ex = Clock(at(2026, 1, 2, 2)), FakeExecutor(block)
    s, lines = make_scheduler(settings, clock, ex)
    assert s.tick().started == ["nightly"]
    clock.t = at(2026, 1, 3, 2)
    assert s.tick().skipped == ["nightly"]
    assert any("still running" in line and "skipped" in line for line in lines)
    block.set()
    s.join()
    assert [c for c in ex.calls if c[0] == "nightly"] == [("nightly", at(2026, 1, 2, 2))]
    clock.t = at(2026, 1, 4, 2)
    assert "nightly" in s.tick().started
    s.join()


def test_scheduler_busy_job_from_another_process_is_skipped(sched_env):
    from llmops_lab.exceptions import JobBusyError

    settings, _ = sched_env
    HistoryStore(settings.home / "jobs.db").set_last_due("nightly", at(2026, 1, 1, 2))

    def busy(job, scheduled_for, cancel):
        raise JobBusyError("job nightly is already running")

    clock = Clock(at(2026, 1, 2, 2))
    s, lines = make_scheduler(settings, clock, busy)
    s.tick()
    s.join()
    assert lines[-1] == "nightly: not started: job nightly is already running"


def test_scheduler_loop_sleeps_until_the_next_due_time_and_stops(sched_env):
    settings, _ = sched_env
    clock, ex = Clock(at(2026, 1, 10, 1, 59, 0)), FakeExecutor()
    s, lines = make_scheduler(settings, clock, ex, poll=3600)
    original = clock.sleep

    def sleep(seconds):
        original(seconds)
        s.join()
        if clock.t >= at(2026, 1, 10, 2, 2):
            s.stop()

    s.sleep = sleep
    s.run()
    assert ex.calls == [("nightly", at(2026, 1, 10, 2))]
    assert clock.slept[0] == pytest.approx(60.5)  # straight to 02:00 (+0.5 s), no busy polling
    assert lines[0].startswith("scheduler: started") and lines[-1] == "scheduler: stopped"


def test_scheduler_stop_finishes_or_cancels_running_executions(sched_env):
    settings, _ = sched_env
    save_jobs(settings.project_root, {"nightly": Job("nightly", "n.ipynb", "0 2 * * *")})
    HistoryStore(settings.home / "jobs.db").set_last_due("nightly", at(2026, 1, 1, 2))
    block = threading.Event()
    clock, ex = Clock(at(2026, 1, 2, 2)), FakeExecutor(block)
    s, lines = make_scheduler(settings, clock, ex, stop_timeout=0.2)
    s.sleep = lambda seconds: s.stop()
    s.run()  # the execution does not finish within stop_timeout: it is cancelled
    assert ex.cancelled == ["nightly"] and not s.running
    assert any(line.startswith("scheduler: cancelling nightly") for line in lines)

    HistoryStore(settings.home / "jobs.db").set_last_due("nightly", at(2026, 1, 2, 2))
    clock.t = at(2026, 1, 3, 2)
    finish = FakeExecutor(threading.Event())
    s2, _ = make_scheduler(settings, clock, finish, stop_timeout=30)
    threading.Timer(0.3, finish.block.set).start()
    s2.sleep = lambda seconds: s2.stop()
    s2.run()  # finishes within stop_timeout: not cancelled
    assert finish.cancelled == [] and finish.calls

    block3 = threading.Event()
    clock.t = at(2026, 1, 4, 2)
    third = FakeExecutor(block3)
    s3, _ = make_scheduler(settings, clock, third, stop_timeout=30)
    s3.sleep = lambda seconds: s3.stop(cancel=True)  # second signal: cancel at once
    s3.run()
    assert third.cancelled == ["nightly"]


def test_scheduler_keeps_the_last_good_jobs_when_the_file_breaks(sched_env):
    settings, _ = sched_env
    clock, ex = Clock(at(2026, 1, 10, 1)), FakeExecutor()
    s, lines = make_scheduler(settings, clock, ex)
    s.tick()
    (settings.project_root / "llmops_jobs.toml").write_text("[jobs.nightly\n")
    clock.t = at(2026, 1, 10, 2)
    assert s.tick().started == ["nightly"]
    s.join()
    assert sum("is not valid TOML" in line for line in lines) == 1


def test_scheduler_marks_executions_of_dead_processes_interrupted(sched_env):
    settings, _ = sched_env
    store = HistoryStore(settings.home / "jobs.db")
    ex = store.start("nightly", "schedule", {}, "n.ipynb")
    store.update(type(ex)(**{**ex.__dict__, "pid": 2 ** 22 + 7}))  # no such process
    s, lines = make_scheduler(settings, Clock(at(2026, 1, 10, 1)), FakeExecutor())
    s.sleep = lambda seconds: s.stop()
    s.run()
    assert store.get(ex.id).status == "failed" and "interrupted" in store.get(ex.id).error
