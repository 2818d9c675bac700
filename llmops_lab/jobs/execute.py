"""Execute a job: papermill run -> output notebook + HTML report -> MLflow run (kind=job) -> history.

:class:`JobExecutor` is a template method, like jupyter-scheduler's executor: ``process()`` calls
``before_start`` (lock, history row, paths, MLflow run), ``execute`` (papermill with parameters, kernel,
a wall-clock timeout per attempt, retries), then ``on_complete`` (recorded metrics, regression gate,
report, artifacts) or ``on_failure`` (status failed/cancelled, error, partial notebook kept). Subclass it
and override a step to change one thing.
"""
from __future__ import annotations

import json
import logging
import math
import signal
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

from llmops_lab.config import Settings, get_settings
from llmops_lab.exceptions import JobBusyError, JobCancelled, JobError, JobTimedOut, LlmopsError
from llmops_lab.jobs.definition import Job, get_job
from llmops_lab.jobs.record import ENV_JOB, ENV_METRICS, read_metrics
from llmops_lab.jobs.store import Execution, HistoryStore, iso, store_for, utcnow

log = logging.getLogger("llmops_lab.jobs")
ENGINE = "llmops-job"
KILL_GRACE_S = 10.0  # after an interrupt, how long a cell may take to stop before the kernel is killed
KERNEL_EXIT_FLUSH_S = "20"  # the kernel's exit flush of tracking records (papermill waits for its shutdown)




# -- papermill engine with a handle on the kernel ---------------------------------------------------

class Watchdog:
    """Per attempt: interrupts the kernel at the deadline or on cancel, kills it if the cell ignores that."""

    def __init__(self, timeout: float | None, cancel: threading.Event, grace: float | None = None):
        self.timeout, self.cancel = timeout, cancel
        self.grace = KILL_GRACE_S if grace is None else grace
        self.reason: str | None = None  # "timeout" | "cancelled"
        self._client: Any = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="llmops-job-watchdog", daemon=True)

    def attach(self, client: Any) -> None:
        self._client = client

    def __enter__(self) -> "Watchdog":
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _process(self) -> Any:
        km = getattr(self._client, "km", None)
        provisioner = getattr(km, "provisioner", None) if km is not None else None
        return getattr(provisioner, "process", None)

    def _signal(self, sig: int) -> bool:
        process = self._process()
        if process is None or process.poll() is not None:
            return False
        try:
            process.send_signal(sig)
        except (ProcessLookupError, OSError):
            return False
        return True

    def _watch(self) -> None:
        deadline = None if self.timeout is None else self._start + self.timeout
        while not self._done.is_set():
            if self.cancel.is_set():
                self.reason = "cancelled"
                break
            if deadline is not None and time.monotonic() >= deadline:
                self.reason = "timeout"
                break
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            self.cancel.wait(wait)
        else:
            return
        interrupted_at: float | None = None
        while not self._done.is_set():
            if interrupted_at is None:
                if self._signal(signal.SIGINT):  # KeyboardInterrupt in the cell: papermill records it
                    interrupted_at = time.monotonic()
            elif time.monotonic() - interrupted_at >= self.grace:
                self._signal(signal.SIGKILL)  # the cell ignored the interrupt: nbclient sees a dead kernel
                return
            self._done.wait(0.1)


_registered = False


def _register_engine() -> str:
    """Papermill's nbclient engine, keeping the client so the watchdog can reach the kernel."""
    global _registered
    if _registered:
        return ENGINE
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class JobEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     llmops_watchdog=None, **kwargs):
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                                        startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                        log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            client = PapermillNotebookClient(nb_man, **final_kwargs)
            if llmops_watchdog is not None:
                llmops_watchdog.attach(client)
            return client.execute()

    papermill_engines.register(ENGINE, JobEngine)
    _registered = True
    return ENGINE


# -- the executor -----------------------------------------------------------------------------------

def _stem(folder: Path, started: datetime) -> str:
    base = started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        stem = base if n == 1 else f"{base}-{n}"
        try:
            with open(folder / f"{stem}.metrics.jsonl", "x"):
                return stem
        except FileExistsError:
            continue
    raise JobError(f"cannot reserve an output name in {folder}")


def _error_text(err: BaseException) -> str:
    if isinstance(err, LlmopsError):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "cancelled (interrupted)"
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0] if text else type(err).__name__


class JobExecutor:
    """Runs one execution of ``job``. ``process()`` is the template method; the steps are overridable."""

    def __init__(self, job: Job, settings: Settings | None = None, *, trigger: str = "manual",
                 scheduled_for: datetime | None = None, cancel: threading.Event | None = None,
                 store: HistoryStore | None = None, echo: Callable[[str], None] | None = None):
        self.job = job
        self.settings = settings or get_settings()
        self.trigger = trigger
        self.scheduled_for = scheduled_for
        self.cancel = cancel or threading.Event()
        self.store = store or store_for(self.settings.home)
        self.echo = echo or log.info
        self.root = self.settings.project_root
        self.folder = self.settings.home / "jobs" / job.name
        self.execution: Execution | None = None
        self.source = job.notebook_path(self.root)
        self.output: Path | None = None
        self.report: Path | None = None
        self.metrics_file: Path | None = None
        self.run_id: str | None = None
        self.client: Any = None
        self.experiment_id: str | None = None
        self.warnings: list[str] = []
        self._lock: Any = None
        self._t0 = 0.0

    # -- template method ----------------------------------------------------------------------------
    def process(self) -> Execution:
        self.acquire()
        try:
            try:
                self.before_start()
                self.execute()
            except BaseException as err:  # noqa: BLE001 - every way out is recorded; non-Exceptions re-raised
                if self.execution is None:
                    raise
                self.on_failure(err)
                if not isinstance(err, Exception) and not isinstance(err, KeyboardInterrupt):
                    raise
            else:
                self.on_complete()
        finally:
            self.release()
        return self.execution

    # -- steps --------------------------------------------------------------------------------------
    def acquire(self) -> None:
        """One execution of a job at a time, across processes (a file lock under .llmops/jobs/NAME)."""
        from filelock import FileLock, Timeout

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            running = self.store.running(self.job.name)
            since = f" (execution {running[-1].id}, started {iso(running[-1].started_at)})" if running else ""
            raise JobBusyError(f"job {self.job.name} is already running{since}: one execution of a job at a time"
                               ) from None
        self._lock = lock
        for stale in self.store.running(self.job.name):  # we hold the lock: nobody else runs this job
            stale.status, stale.ended_at = "failed", utcnow()
            stale.error = f"interrupted: the process running it (pid {stale.pid}) stopped before it finished"
            self.store.update(stale)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def before_start(self) -> None:
        started = utcnow()
        self._t0 = time.monotonic()
        self.execution = self.store.start(self.job.name, self.trigger, dict(self.job.parameters), self.job.notebook,
                                          self.scheduled_for, started)
        stem = _stem(self.folder, started)
        self.output = self.folder / f"{stem}.ipynb"
        self.report = self.folder / f"{stem}.html"
        self.metrics_file = self.folder / f"{stem}.metrics.jsonl"
        self.execution.output_path = str(self.output)
        from llmops_lab.tracking import context
        from llmops_lab.jobs.promotion import notebook_digest, read_notebook

        if not self.source.is_file():
            raise JobError(f"notebook {self.job.notebook} of job {self.job.name} not found: restore it or "
                           "promote the job again")
        nb = read_notebook(self.source)
        self.execution.notebook_digest = notebook_digest(nb)
        self.execution.git_commit = context.git_commit.__wrapped__(self.root)  # fresh: HEAD moves between runs
        self.store.update(self.execution)
        self.echo(f"{self.job.name}: execution {self.execution.id} started ({self.trigger}) "
                  f"{self.job.notebook} {_params(self.job.parameters)}")
        self._start_run()

    def execute(self) -> None:
        last: BaseException | None = None
        attempt_errors = []
        for attempt in range(1, self.job.retries + 2):
            if self.cancel.is_set():
                raise JobCancelled(f"job {self.job.name} cancelled before attempt {attempt}")
            self.execution.attempts = attempt
            self.store.update(self.execution)
            self.metrics_file.write_text("")  # the metrics of the last attempt are the execution's
            try:
                self.run_attempt(attempt)
                return
            except (JobCancelled, KeyboardInterrupt):
                raise
            except Exception as err:  # noqa: BLE001 - a failed attempt is retried, then reported
                last = err
                attempt_errors.append(_error_text(err))
                if attempt <= self.job.retries:
                    self.echo(f"{self.job.name}: attempt {attempt} failed ({_error_text(err)}); retrying")
                    self.execution.stats["attempt_errors"] = attempt_errors
        assert last is not None
        raise last

    def run_attempt(self, attempt: int) -> None:
        from llmops_lab.jobs.notebooks import execute_notebook

        engine = _register_engine()
        env = {ENV_METRICS: str(self.metrics_file), ENV_JOB: self.job.name,
               "LLMOPS_JOB_EXECUTION": str(self.execution.id),
               "MLFLOW_TRACKING_URI": self.settings.resolved_tracking_uri(),
               "LLMOPS_EXIT_FLUSH_S": KERNEL_EXIT_FLUSH_S}
        watchdog = Watchdog(self.job.timeout, self.cancel)
        with watchdog:
            try:
                execute_notebook(self.source, self.output, self.settings, parameters=dict(self.job.parameters),
                                 timeout=None, kernel_name=self.job.kernel, env=env, engine_name=engine,
                                 llmops_watchdog=watchdog)
            except Exception as err:
                cell = _stopped_cell(self.output)
                where = f" in cell {cell}" if cell else ""
                if watchdog.reason == "timeout":
                    raise JobTimedOut(f"{self.job.notebook} timed out after {self.job.timeout:g} s{where} "
                                      f"(partial output in {self.output})") from None
                if watchdog.reason == "cancelled":
                    raise JobCancelled(f"job {self.job.name} cancelled{where} (partial output in {self.output})"
                                       ) from None
                if isinstance(err, LlmopsError):
                    raise
                raise JobError(f"{self.job.notebook} failed{where}: {_error_text(err)} "
                               f"(partial output in {self.output})") from None

    def on_complete(self) -> None:
        execution = self.execution
        self._collect_metrics()
        self._drift_metrics()
        self._probe_metrics()
        status = "completed"
        if self.job.gates:
            verdict = self.evaluate_gate()
            execution.gate = verdict.to_dict()
            if not verdict.passed:
                status = "regressed"
                execution.error = f"regression gate: {verdict.reason}"
        self._finish(status)

    def on_failure(self, err: BaseException) -> None:
        cancelled = isinstance(err, (JobCancelled, KeyboardInterrupt))
        self.execution.error = _error_text(err)
        if self.metrics_file is not None:
            self._collect_metrics()
        self._finish("cancelled" if cancelled else "failed")

    # -- helpers ------------------------------------------------------------------------------------
    def evaluate_gate(self):
        from llmops_lab.jobs import gate as gate_mod

        checks, baselines, passed = [], [], True
        for gate in self.job.gates:
            metrics, source = self._baseline(gate)
            verdict = gate_mod.evaluate([gate], self.execution.metrics, metrics, source,
                                        require_baseline=gate.baseline != "previous")
            checks += verdict.checks
            passed = passed and verdict.passed
            if verdict.baseline is not None:
                baselines.append(verdict.baseline)
        return gate_mod.Verdict(passed, checks, baselines[0] if baselines else None)

    def _baseline(self, gate) -> tuple[dict[str, float] | None, str | None]:
        if gate.max_drop is None:
            return None, None
        if gate.baseline == "previous":
            previous = self.store.latest(self.job.name, ("completed",), before=self.execution.id)
            return (previous.metrics, f"execution {previous.id}") if previous is not None else (None, None)
        pinned = self.store.find_by_run(gate.baseline)
        if pinned is not None:
            return pinned.metrics, f"run {gate.baseline[:8]}"
        from llmops_lab.tracking import reader

        metrics = reader.run_metrics(self.client, gate.baseline) if self.client is not None else None
        if metrics is None:  # unknown run: the gate says so
            return None, f"run {gate.baseline} not found"
        return metrics, f"run {gate.baseline[:8]}"

    def _drift_metrics(self) -> None:
        """``drift.<metric>`` / ``drift.any`` (0 or 1) for the notebook's calls: today against the 30 days
        before, per prompt version. Computed (it reads MLflow) only when a gate names a ``drift.`` metric,
        e.g. ``{metric="drift.any", max=0}``; they then join the execution's metrics."""
        if not any(g.metric.startswith("drift.") for g in self.job.gates):
            return
        try:
            from llmops_lab.analysis.drift import drift_flags, drift_report
            from llmops_lab.tracking.reader import load_calls
            from llmops_lab.tracking import context

            experiment = context.experiment_name(self.settings, str(self.source))
            report = drift_report(load_calls(since="30d", experiment=experiment), by="prompt")
        except Exception as err:  # noqa: BLE001 - no calls yet, or MLflow unreachable: no drift figures
            self.warnings.append(f"drift not computed: {_error_text(err)}")
            return
        self.execution.metrics.update(drift_flags(report))
        flagged = report[report["shifted"]] if len(report) else report
        self.execution.stats["drift"] = [str(d) for d in flagged.get("description", [])]

    def _probe_metrics(self) -> None:
        """``probe.<attribute>.<scorer>.flip_rate`` / ``.p_value`` of the notebook's probe runs in this execution
        (the latest run wins; a value the notebook recorded itself wins over it). Read only when a gate names a
        ``probe.`` metric, e.g. ``{metric = "probe.gender.exact_label.flip_rate", max = 0.05}``."""
        if self.client is None or self.experiment_id is None or \
                not any(g.metric.startswith("probe.") for g in self.job.gates):
            return
        try:
            from llmops_lab.tracking import reader
            from llmops_lab.tracking import tags as T

            start_ms = int(self.execution.started_at.timestamp() * 1000) - 1000
            runs = reader.batch_runs_between(self.client, self.experiment_id, start_ms, int(time.time() * 1000) + 1000,
                                             str(self.source.resolve()), kind=T.PROBE)
        except Exception as err:  # noqa: BLE001 - MLflow unreachable: the gate then fails closed on the metric
            self.warnings.append(f"probe metrics not collected: {_error_text(err)}")
            return
        found: dict[str, float] = {}
        for run in runs:  # oldest first: a later probe overwrites an earlier one
            found.update({k: v for k, v in run.data.metrics.items() if k.startswith("probe.")})
        self.execution.metrics = {**found, **self.execution.metrics}

    def _collect_metrics(self) -> None:
        records = read_metrics(self.metrics_file)
        self._records = records
        self.execution.metrics = {r["name"]: r["value"] for r in records}

    def _finish(self, status: str) -> None:
        execution = self.execution
        execution.status = status
        execution.ended_at = utcnow()
        execution.duration_s = round(time.monotonic() - self._t0, 3)
        execution.stats["duration_s"] = execution.duration_s
        execution.stats["attempts"] = execution.attempts
        self._batch_stats()
        if self.output is not None and self.output.is_file():
            try:
                from llmops_lab.jobs.report import render_html

                render_html(self.output, self.report, self.job, execution)
                execution.report_path = str(self.report)
            except Exception as err:  # noqa: BLE001 - the status matters more than the report
                self.warnings.append(f"HTML report failed: {_error_text(err)}")
        self._end_run()
        if self.warnings:
            execution.stats["warnings"] = self.warnings
        self.store.update(execution)
        self.echo(f"{self.job.name}: execution {execution.id} {status} in {execution.duration_s:.1f} s"
                  f"{_metric_text(execution.metrics)}{' - ' + execution.error if execution.error else ''}")

    # -- MLflow -------------------------------------------------------------------------------------
    def _start_run(self) -> None:
        """A RUNNING run in the notebook's experiment (kind=job); failures are warnings, never the status."""
        try:
            from llmops_lab.tracking import context, writer
            from llmops_lab.tracking import tags as T

            name = context.experiment_name(self.settings, str(self.source))
            job, ex = self.job, self.execution
            tags = {T.JOB_NAME: job.name, T.JOB_SCHEDULE: job.schedule or "manual",
                    T.JOB_TIMEZONE: job.timezone, T.JOB_TRIGGER: self.trigger,
                    T.JOB_EXECUTION: str(ex.id), T.JOB_STATUS: "running",
                    **writer.notebook_tags(str(self.source)), T.NOTEBOOK_DIGEST: ex.notebook_digest or "",
                    **writer.user_tags(context.user()), T.HOST: socket.gethostname()}
            if ex.git_commit:
                tags[T.GIT_COMMIT] = tags[T.SOURCE_GIT_COMMIT] = ex.git_commit
            if self.scheduled_for is not None:
                tags[T.JOB_SCHEDULED_FOR] = iso(self.scheduled_for)
            params = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in job.parameters.items()}
            params.update({"job.timeout": f"{job.timeout:g}", "job.retries": str(job.retries),
                           "job.kernel": job.kernel})
            # creates/migrates the store once, under a lock
            self.client, self.experiment_id, self.run_id = writer.start_job_run(
                self.settings, experiment=name, name=job.name, started_ms=int(ex.started_at.timestamp() * 1000),
                tags=tags)
            ex.run_id = self.run_id
            writer.log_params(self.client, self.run_id, params)
            self.store.update(ex)
        except Exception as err:  # noqa: BLE001
            self.warnings.append(f"MLflow run not created: {_error_text(err)}")
            self.client = self.client if self.run_id else None

    def _batch_stats(self) -> None:
        """The kernel's batch runs during this execution (same notebook, inside its time window)."""
        if self.client is None or self.experiment_id is None:
            return
        try:
            from llmops_lab.tracking.spool import has_orphans

            if self.settings.tracking and has_orphans(self.settings.home / "spool"):
                from llmops_lab import tracking  # records a killed kernel left behind

                tracking.replay_if_needed(self.settings)
                tracking.flush(30)
            start_ms = int(self.execution.started_at.timestamp() * 1000) - 1000
            end_ms = int(time.time() * 1000) + 1000
            from llmops_lab.tracking import reader

            runs = reader.batch_runs_between(self.client, self.experiment_id, start_ms, end_ms,
                                             str(self.source.resolve()))
        except Exception as err:  # noqa: BLE001
            self.warnings.append(f"batch runs not collected: {_error_text(err)}")
            return
        if not runs:
            return
        stats = self.execution.stats
        metrics = [r.data.metrics for r in runs]

        def values(key: str) -> list[float]:
            return [m[key] for m in metrics if m.get(key) is not None and not math.isnan(m[key])]

        stats["batch_runs"] = [r.info.run_id for r in runs]
        for key, how in (("rows", sum), ("errors", sum), ("total_tokens", sum), ("cost_usd", sum),
                         ("latency_p50_ms", lambda v: sum(v) / len(v)), ("latency_p95_ms", max)):
            found = values(key)
            if found:
                stats[f"batch.{key}"] = float(how(found))
        if stats.get("batch.rows"):
            stats["batch.error_rate"] = stats.get("batch.errors", 0.0) / stats["batch.rows"]
        for key in sorted({k for m in metrics for k in m if k.startswith("score.")}):
            found = values(key)
            if found:
                stats[f"batch.{key}"] = sum(found) / len(found)

    def _end_run(self) -> None:
        if self.client is None or self.run_id is None:
            return
        ex = self.execution
        try:
            from llmops_lab.tracking import tags as T
            from llmops_lab.tracking import writer

            tags = {T.JOB_STATUS: ex.status}
            if ex.error:
                tags[T.ERROR] = ex.error[:5000]
            if ex.gate is not None:
                tags[T.JOB_GATE] = ("passed: " if ex.gate["passed"] else "breached: ") + ex.gate["reason"][:4900]
            if ex.stats.get("batch_runs"):
                tags[T.JOB_BATCH_RUNS] = ",".join(ex.stats["batch_runs"])[:5000]
            status = {"completed": "FINISHED", "regressed": "FINISHED", "cancelled": "KILLED"}.get(ex.status, "FAILED")
            writer.end_job_run(self.client, self.run_id, records=getattr(self, "_records", []), stats=ex.stats,
                               tags=tags, status=status,
                               artifacts=[str(path) for path in (self.output, self.report, self.metrics_file)
                                          if path is not None and path.is_file()])
        except Exception as err:  # noqa: BLE001
            self.warnings.append(f"MLflow run not completed: {_error_text(err)}")


def _stopped_cell(output: Path | None) -> int | None:
    """The execution count of the cell that failed or was running when the notebook stopped."""
    if output is None or not output.is_file():
        return None
    try:
        cells = json.loads(output.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    for cell in cells:
        status = (cell.get("metadata", {}).get("papermill") or {}).get("status")
        if status in ("failed", "running"):
            return cell.get("execution_count")
    return None


def _params(parameters: Mapping[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in parameters.items()) + ")" if parameters else ""


def _metric_text(metrics: Mapping[str, float]) -> str:
    return "".join(f" · {k} {v:.4g}" for k, v in metrics.items())


def run_job(name: str, parameters: Mapping[str, Any] | None = None, *, trigger: str = "manual",
            scheduled_for: datetime | None = None, cancel: threading.Event | None = None,
            settings: Settings | None = None, echo: Callable[[str], None] | None = None) -> Execution:
    """Run job ``name`` now, as the scheduler would. Returns the :class:`Execution` (check ``.status``:
    completed, failed, regressed or cancelled). ``parameters`` override the job's for this execution only
    (typed by the notebook's defaults). Raises :class:`JobBusyError` if it is already running."""
    settings = settings or get_settings()
    job = get_job(settings.project_root, name)
    if parameters:
        from llmops_lab.jobs.promotion import inspect_parameters, read_notebook, resolve_notebook, type_parameters

        path, relative = resolve_notebook(job.notebook_path(settings.project_root), settings.project_root)
        job = job.with_parameters(type_parameters(parameters, inspect_parameters(read_notebook(path)), relative))
    return JobExecutor(job, settings, trigger=trigger, scheduled_for=scheduled_for, cancel=cancel,
                       echo=echo).process()
