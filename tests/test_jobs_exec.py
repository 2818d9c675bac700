"""Jobs for real: papermill runs of the notebooks in tests/notebooks/ (and notebooks/04_nightly_eval.ipynb),
with their output notebooks, HTML reports, MLflow runs, history and regression gate.

One project for the whole module (its MLflow store is created once); each test uses its own job names.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, active_project, make_project

NOTEBOOKS = Path(__file__).parent / "notebooks"
BIN = Path(sys.executable).parent / "llmops-lab"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    notebooks = {f"notebooks/{nb.name}": nb for nb in [*NOTEBOOKS.glob("*.ipynb"),
                                                       REPO / "notebooks" / "04_nightly_eval.ipynb"]}
    root = make_project(tmp_path_factory.mktemp("jobsproj"), notebooks, store=True, git=True)
    with pytest.MonkeyPatch.context() as mp, \
            active_project(root, mp, unset=("LLMOPS_HOME", "LLMOPS_JOB_METRICS", "LLMOPS_JOB")):
        yield root


def client():
    from conftest import mlflow_client

    return mlflow_client()


def cli(*args, cwd, timeout=180):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "LLMOPS_JOB_METRICS")}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def errors_in(path) -> list[dict]:
    nb = nbformat.read(str(path), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def test_success_writes_notebook_report_history_and_mlflow_run(proj):
    from llmops_lab import jobs

    jobs.promote("notebooks/success.ipynb", "hello", "0 2 * * *", {"repeat": "3"})
    ex = jobs.run_job("hello")
    assert ex.status == "completed" and ex.attempts == 1 and ex.error is None
    assert ex.metrics == {"words": 3.0}
    out, html = Path(ex.output_path), Path(ex.report_path)
    assert out.parent == proj / ".llmops" / "jobs" / "hello"
    assert out.suffix == ".ipynb" and html == out.with_suffix(".html")
    nb = nbformat.read(str(out), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "repeat = 3" in injected[0].source
    assert "hello hello hello" in json.dumps(nb.cells[-2].outputs)
    page = html.read_text()
    assert "Job hello: completed" in page and "hello hello hello" in page
    assert "message = " not in page  # input hidden
    assert [e.id for e in jobs.history("hello")] == [ex.id]

    run = client().get_run(ex.run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED" and run.info.run_name == "hello"
    assert tags["llmops.kind"] == "job" and tags["llmops.job"] == "hello" and tags["llmops.job.status"] == "completed"
    assert tags["llmops.job.schedule"] == "0 2 * * *" and tags["llmops.job.trigger"] == "manual"
    assert tags["llmops.git_commit"] == subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, capture_output=True,
                                                       text=True).stdout.strip()
    assert len(tags["llmops.notebook_digest"]) == 64 and tags["mlflow.source.name"].endswith("success.ipynb")
    assert run.data.params["repeat"] == "3" and run.data.metrics["words"] == 3.0
    assert client().get_experiment(run.info.experiment_id).name == "notebooks/success"
    artifacts = {Path(a.path).name for a in client().list_artifacts(ex.run_id, "job")}
    assert {out.name, html.name} <= artifacts


def test_failing_cell_marks_failed_and_keeps_the_partial_notebook(proj):
    from llmops_lab import jobs

    jobs.promote("notebooks/failing.ipynb", "broken")
    ex = jobs.run_job("broken")
    assert ex.status == "failed"  # never "completed"
    assert "failed in cell 3: ZeroDivisionError: division by zero" in ex.error
    nb = nbformat.read(ex.output_path, as_version=4)
    assert "before the failure" in json.dumps([c.get("outputs") for c in nb.cells])
    assert [e["ename"] for e in errors_in(ex.output_path)] == ["ZeroDivisionError"]
    assert "never printed" not in json.dumps([c.get("outputs") for c in nb.cells])
    assert Path(ex.report_path).is_file() and "division by zero" in Path(ex.report_path).read_text()
    run = client().get_run(ex.run_id)
    assert run.info.status == "FAILED" and "ZeroDivisionError" in run.data.tags["llmops.error"]
    assert jobs.history("broken")[0].status == "failed"


def test_timeout_interrupts_the_kernel_and_fails(proj):
    from llmops_lab import jobs

    jobs.promote("notebooks/slow.ipynb", "sleepy", timeout=2)
    started = time.monotonic()
    ex = jobs.run_job("sleepy")
    assert time.monotonic() - started < 30
    assert ex.status == "failed" and "timed out after 2 s in cell 2" in ex.error
    assert [e["ename"] for e in errors_in(ex.output_path)] == ["KeyboardInterrupt"]


def test_a_cell_ignoring_the_interrupt_gets_its_kernel_killed(proj, monkeypatch):
    from llmops_lab import jobs
    from llmops_lab.jobs import execute

    monkeypatch.setattr(execute, "KILL_GRACE_S", 1.0)
    jobs.promote("notebooks/stubborn.ipynb", "stubborn", timeout=1)
    started = time.monotonic()
    ex = jobs.run_job("stubborn")
    assert time.monotonic() - started < 30
    assert ex.status == "failed" and "timed out after 1 s" in ex.error
    assert "not listening" in Path(ex.output_path).read_text()  # the partial notebook is kept


def test_cancel_stops_the_execution_cleanly(proj):
    from llmops_lab import jobs

    jobs.promote("notebooks/slow.ipynb", "cancelme")
    cancel = threading.Event()
    timer = threading.Timer(3.0, cancel.set)
    timer.start()
    ex = jobs.run_job("cancelme", cancel=cancel)
    timer.cancel()
    assert ex.status == "cancelled" and "cancelled" in ex.error
    assert client().get_run(ex.run_id).info.status == "KILLED"


def test_retries_run_the_notebook_again(proj):
    from llmops_lab import jobs

    jobs.promote("notebooks/flaky.ipynb", "flaky", retries=1)
    ex = jobs.run_job("flaky")
    assert ex.status == "completed" and ex.attempts == 2 and ex.metrics == {"accuracy": 1.0}
    assert "flaky: the first attempt fails" in ex.stats["attempt_errors"][0]


def test_missing_parameters_cell_is_added_on_request_then_used(proj):
    from llmops_lab import jobs
    from llmops_lab.exceptions import NotebookError

    with pytest.raises(NotebookError, match="has no cell tagged 'parameters'.*--add-parameters-cell"):
        jobs.promote("notebooks/no_params.ipynb", "np", parameters={"threshold": "0.9"})
    assert "np" not in jobs.load_jobs(proj)
    result = jobs.promote("notebooks/no_params.ipynb", "np", parameters={"threshold": "0.9"},
                          add_parameters_cell=True)
    assert result.added_parameters == ["model", "threshold"] and result.job.parameters == {"threshold": 0.9}
    nb = nbformat.read(str(proj / "notebooks" / "no_params.ipynb"), as_version=4)
    assert nb.cells[0].metadata["tags"] == ["parameters"]
    ex = jobs.run_job("np", {"threshold": "0.7"})  # typed by the notebook's default, for this run only
    assert ex.status == "completed" and ex.metrics == {"threshold": 0.7} and ex.parameters == {"threshold": 0.7}
    assert jobs.get_job(proj, "np").parameters == {"threshold": 0.9}
    with pytest.raises(jobs.JobDefinitionError, match="parameter threshold='low' is not a valid float"):
        jobs.run_job("np", {"threshold": "low"})


def test_recorded_metrics_and_the_regression_gate_through_the_exported_cron_line(proj):
    """accuracy 0.91 -> baseline; then the exported crontab command (llmops-lab jobs run) with 0.80 regresses."""
    from llmops_lab import jobs

    jobs.promote("notebooks/metrics.ipynb", "gated", "*/5 * * * *",
                 gate={"metric": "accuracy", "min": 0.5, "max_drop": 0.05})
    first = jobs.run_job("gated")
    assert first.status == "completed" and first.metrics == {"loss": 0.3, "accuracy": 0.91, "latency_ms": 120.0}
    assert first.gate["passed"] and "no baseline yet" in first.gate["reason"]
    history = client().get_metric_history(first.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert "accuracy</td>" in Path(first.report_path).read_text().replace(" ", "")  # the scalar in the report

    jobs.promote("notebooks/metrics.ipynb", "gated", "*/5 * * * *", {"accuracy": 0.80}, replace=True,
                 gate={"metric": "accuracy", "min": 0.5, "max_drop": 0.05})
    line = [x for x in jobs.export("gated", "cron").splitlines() if x and not x.startswith(("#", "CRON_TZ"))][0]
    command = line.split(None, 5)[5]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 1  # non-zero for CI
    log = (proj / ".llmops" / "jobs" / "gated" / "cron.log").read_text()
    last = log.strip().splitlines()[-1]
    assert last == (f"llmops-lab: job gated regressed: regression gate: accuracy 0.8 dropped 0.11 from baseline 0.91 "
                    f"(execution {first.id}), more than max_drop 0.05")
    second = jobs.history("gated")[0]
    assert second.status == "regressed" and second.gate["baseline"]["source"] == f"execution {first.id}"
    assert client().get_run(second.run_id).data.tags["llmops.job.status"] == "regressed"
    status = {s.name: s for s in jobs.list_jobs()}["gated"]
    assert status.last_status == "regressed" and status.score == ("accuracy", 0.8)

    # a pinned baseline: the first run, found in the history (or in MLflow), or missing (fail closed)
    import llmops_lab
    from llmops_lab.jobs import Gate, Job
    from llmops_lab.jobs.execute import JobExecutor

    for baseline, passed, why in [(first.run_id, False, f"from baseline 0.91 (run {first.run_id[:8]})"),
                                  (second.run_id, True, f"vs baseline 0.8 (run {second.run_id[:8]})"),
                                  ("0" * 32, False, "the pinned baseline (run 00000000000000000000000000000000 "
                                                    "not found) has no accuracy")]:
        job = Job("gated", "notebooks/metrics.ipynb", gates=(Gate("accuracy", max_drop=0.05, baseline=baseline),))
        executor = JobExecutor(job, llmops_lab.get_settings())
        executor.execution, executor.client = second, client()
        verdict = executor.evaluate_gate()
        assert verdict.passed is passed and why in verdict.reason, verdict.reason


def test_scheduler_runs_a_real_due_job(proj):
    """The scheduler (fake clock) runs a due job with papermill (in-process executor: no second import bill)."""
    import llmops_lab
    from llmops_lab import jobs
    from llmops_lab.jobs.scheduler import in_process_executor
    from llmops_lab.jobs.store import store_for, utcnow

    jobs.promote("notebooks/success.ipynb", "every", "* * * * *")
    settings = llmops_lab.get_settings()
    now = utcnow().replace(second=30, microsecond=0)
    store_for(settings.home).set_last_due("every", now - timedelta(minutes=3))
    lines: list[str] = []
    scheduler = jobs.Scheduler(settings, now=lambda: now, sleep=lambda s: None, echo=lines.append,
                               executor=in_process_executor(settings))
    assert scheduler.tick().started == ["every"]
    scheduler.join(120)
    ex = jobs.history("every")[0]
    assert ex.status == "completed" and ex.trigger == "schedule"
    assert ex.scheduled_for == now.replace(second=0)
    assert client().get_run(ex.run_id).data.tags["llmops.job.scheduled_for"] == ex.scheduled_for.isoformat()
    assert any("3 run times missed" in line for line in lines)
    assert any(line.startswith(f"every: execution {ex.id} (due") and "completed" in line for line in lines)
    assert scheduler.tick().started == []


def test_subprocess_executor_runs_llmops_lab_jobs_run(proj):
    """The scheduler's default executor: a `llmops-lab jobs run` child, its output in scheduler.log."""
    import threading

    import llmops_lab
    from llmops_lab.jobs import Job
    from llmops_lab.jobs.scheduler import SubprocessExecutor
    from llmops_lab.jobs.store import utcnow

    settings = llmops_lab.get_settings()
    ghost = Job("ghost", "notebooks/success.ipynb", "* * * * *")  # not in llmops_jobs.toml: the child refuses it
    status = SubprocessExecutor(settings)(ghost, utcnow().replace(second=0, microsecond=0), threading.Event())
    assert status == "failed"
    log = (proj / ".llmops" / "jobs" / "ghost" / "scheduler.log").read_text()
    assert "jobs run ghost --trigger schedule --scheduled-for" in log
    assert "llmops-lab: error: no job named 'ghost'" in log


@pytest.mark.slow
def test_nightly_eval_notebook_promoted_run_and_reported(proj):
    """notebooks/04_nightly_eval.ipynb on the embedded model: promoted, run, listed (CLI), reported."""
    from llmops_lab import jobs

    promoted = jobs.promote("notebooks/04_nightly_eval.ipynb", "nightly", "0 2 * * *", {"threshold": "0.6"},
                            gate=[{"metric": "accuracy", "min": 0.0, "max_drop": 0.5},
                                  {"metric": "drift.any", "max": 0}])
    assert promoted.job.parameters == {"threshold": 0.6} and promoted.description == "at 02:00, every day"

    ex = jobs.run_job("nightly")  # in-process: this test process already paid papermill's import
    assert ex.status == "completed", ex.error
    assert 0.0 <= ex.metrics["accuracy"] <= 1.0 and ex.metrics["above_threshold"] in (0.0, 1.0)
    assert ex.metrics["drift.any"] == 0.0  # one night of calls: no baseline to drift from
    assert ex.stats["batch.rows"] == 8 and len(ex.stats["batch_runs"]) == 1
    batch = client().get_run(ex.stats["batch_runs"][0])
    assert batch.data.tags["llmops.kind"] == "batch" and batch.data.params["model"] == "smollm2-135m"
    job_run = client().get_run(ex.run_id)
    assert job_run.data.metrics["batch.rows"] == 8 and "batch.latency_p50_ms" in job_run.data.metrics
    assert job_run.data.tags["llmops.job.batch_runs"] == ex.stats["batch_runs"][0]

    listed = cli("jobs", "list", cwd=proj)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("nightly "))
    assert "completed" in row and "accuracy" in row and "2 * * *" in row

    report = cli("report", "nightly", cwd=proj)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0] == "report: .llmops/jobs/nightly/report.html"
    html = (proj / ".llmops" / "jobs" / "nightly" / "report.html").read_text()
    assert "Job report: nightly" in html and "Latest vs baseline" in html and "Worst rows of the latest batch" in html
    assert "<h2" in html and "Drift" in html
    assert html.count("data:image/png;base64") >= 2  # metrics over time, latency/cost trends
    assert ex.stats["batch_runs"][0][:8] in html  # the worst rows come from the job's batch
    assert not errors_in(proj / ".llmops" / "jobs" / "nightly" / "report.ipynb")
