"""The scheduler: runs due jobs. Time comes from an injected ``now()`` and waiting from ``sleep()``, so
tests drive it with a fake clock; cron maths is in :mod:`.cron`.

- Due times come from croniter in each job's timezone.
- One execution of a job at a time: a job still running when it is due again is skipped (logged), and
  executions take the job's file lock, so a manual ``jobs run`` and the scheduler never overlap.
- Missed runs while the scheduler was down run once at start, not as a burst: the last handled due
  time of each job is on disk (``jobs.db``), so this also survives restarts. A job seen for the first
  time starts from now.
- Stop: ``stop()`` (SIGINT/SIGTERM in the CLI) lets running executions finish for up to ``stop_timeout``
  seconds, then cancels them; ``stop(cancel=True)`` (a second signal) cancels at once.
- The MLflow store is created/migrated before the first execution, so parallel executions never race
  on its schema.
- One log line per execution start and end.
- Retention: with a ``[tool.llmops-lab.retention]`` table, ``gc`` (:func:`llmops_lab.jobs.retention.gc`) runs on
  the first tick and then once every 24 hours; the last run is in ``jobs.db`` (as ``GC_STATE``), so a
  restart does not repeat it.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from llmops_lab.config import Settings, get_settings
from llmops_lab.exceptions import LlmopsError
from llmops_lab.jobs import cron
from llmops_lab.jobs.definition import Job, load_jobs
from llmops_lab.jobs.store import HistoryStore, iso, store_for, utcnow

log = logging.getLogger("llmops_lab.jobs.scheduler")

GC_STATE = "(retention gc)"  # its row in jobs.db's scheduler state: never a job name (no parentheses there)
GC_EVERY = timedelta(days=1)
# executor(job, scheduled_for, cancel_event) -> final status ("completed", "failed", ...)
Executor = Callable[[Job, datetime, threading.Event], str]


@dataclass
class Running:
    job: str
    scheduled_for: datetime
    cancel: threading.Event
    thread: threading.Thread
    status: str | None = None


@dataclass
class TickResult:
    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class SubprocessExecutor:
    """Each execution in its own ``llmops-lab jobs run`` process: a stuck kernel never blocks the scheduler,
    jobs run in parallel, and a cancel is a SIGTERM (the child interrupts its kernel and records
    ``cancelled``)."""

    def __init__(self, settings: Settings, grace: float = 30.0):
        self.settings = settings
        self.grace = grace

    def __call__(self, job: Job, scheduled_for: datetime, cancel: threading.Event) -> str:
        folder = self.settings.home / "jobs" / job.name
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "llmops_lab.cli", "jobs", "run", job.name, "--trigger", "schedule",
                   "--scheduled-for", iso(scheduled_for)]
        with open(folder / "scheduler.log", "a", encoding="utf-8") as out:
            out.write(f"--- {iso(utcnow())} {' '.join(command[3:])}\n")
            out.flush()
            proc = subprocess.Popen(command, cwd=str(self.settings.project_root), stdout=out,
                                    stderr=subprocess.STDOUT)
            while proc.poll() is None:
                if cancel.wait(0.2):
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(self.grace)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    break
        latest = store_for(self.settings.home).history(job.name, 1)
        if latest and latest[0].scheduled_for is not None and latest[0].scheduled_for == scheduled_for.replace(
                microsecond=0) and latest[0].status != "running":
            return latest[0].status
        return "cancelled" if cancel.is_set() else ("failed" if proc.returncode else "completed")


class Scheduler:
    """Runs the project's due jobs. ``run()`` loops until :meth:`stop`; :meth:`tick` does one pass."""

    def __init__(self, settings: Settings | None = None, *, now: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] | None = None, executor: Executor | None = None,
                 poll: float = 30.0, max_parallel: int = 4, stop_timeout: float = 60.0,
                 store: HistoryStore | None = None, echo: Callable[[str], None] | None = None,
                 gc: Callable[[datetime], object] | None = None):
        self.settings = settings or get_settings()
        self.now = now or utcnow
        self._stop_event = threading.Event()
        self.sleep = sleep or (lambda seconds: self._stop_event.wait(seconds))
        self.executor = executor or SubprocessExecutor(self.settings)
        self.poll = poll
        self.max_parallel = max_parallel
        self.stop_timeout = stop_timeout
        self.store = store or store_for(self.settings.home)
        self.echo = echo or log.info
        self.gc = gc or _retention_gc(self.settings)
        self.running: dict[str, Running] = {}
        self.jobs: dict[str, Job] = {}
        self._stopping = False
        self._cancel_now = False
        self._ready = False
        self._bad_file: str | None = None
        self._lock = threading.Lock()

    # -- set-up -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create/migrate the MLflow store once (before any parallel execution)."""
        if self._ready:
            return
        from llmops_lab.tracking.clients import ensure_store

        ensure_store(self.settings.resolved_tracking_uri())
        self._ready = True

    def _load(self) -> dict[str, Job]:
        try:
            jobs = load_jobs(self.settings.project_root)
        except LlmopsError as err:
            if str(err) != self._bad_file:
                self.echo(f"scheduler: {err}; keeping the jobs loaded before")
                self._bad_file = str(err)
            return self.jobs
        self._bad_file = None
        self.jobs = jobs
        return jobs

    # -- one pass -----------------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Start every job that is due now (at most once each, however many runs were missed)."""
        self.prepare()
        now = self.now()
        result = TickResult()
        self._reap()
        self._collect_garbage(now)
        for name, job in sorted(self._load().items()):
            if not job.schedule:
                continue
            last = self.store.last_due(name)
            if last is None:  # first sight: start from now (never a burst of history)
                self.store.set_last_due(name, now)
                continue
            due = cron.due(job.schedule, job.timezone, last, now)
            if due is None:
                continue
            if self._stopping:
                break
            if name in self.running:
                self.store.set_last_due(name, due.at)
                self.echo(f"{name}: due at {_fmt(due.at)} but the run due at {_fmt(self.running[name].scheduled_for)} "
                          "is still running; skipped (one execution of a job at a time)")
                result.skipped.append(name)
                continue
            if len(self.running) >= self.max_parallel:
                continue  # stays due; starts when a slot frees
            self.store.set_last_due(name, due.at)  # before starting: a crash never re-runs it in a loop
            missed = f" ({due.missed} run times missed while the scheduler was down; running once)" \
                if due.missed > 1 else ""
            self.echo(f"{name}: starting the run due at {_fmt(due.at)}{missed}")
            self._start(job, due.at)
            result.started.append(name)
        return result

    def _collect_garbage(self, now: datetime) -> None:
        """Apply the retention limits once a day (a failure is logged; the jobs still run)."""
        if not self.settings.retention:
            return
        last = self.store.last_due(GC_STATE)
        if last is not None and now - last < GC_EVERY:
            return
        self.store.set_last_due(GC_STATE, now)  # first: a gc that crashes is not retried in a loop
        try:
            report = self.gc(now)
        except Exception as err:  # noqa: BLE001 - retention must never stop the jobs
            self.echo(f"scheduler: retention gc failed: {type(err).__name__}: {err}")
            return
        counts = getattr(report, "counts", dict)()
        self.echo("scheduler: retention gc: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing old"))

    def _start(self, job: Job, scheduled_for: datetime) -> None:
        cancel = threading.Event()
        entry = Running(job.name, scheduled_for, cancel, threading.Thread())

        def work() -> None:
            try:
                entry.status = self.executor(job, scheduled_for, cancel)
            except LlmopsError as err:  # e.g. busy: a manual `jobs run` holds the job's lock
                entry.status = "skipped"
                self.echo(f"{job.name}: not started: {err}")
            except Exception as err:  # noqa: BLE001 - a broken execution never stops the scheduler
                entry.status = "failed"
                self.echo(f"{job.name}: executor error: {type(err).__name__}: {err}")
            if entry.status != "skipped":
                self.echo(self._describe(job.name, entry))

        entry.thread = threading.Thread(target=work, name=f"llmops-job-{job.name}", daemon=True)
        with self._lock:
            self.running[job.name] = entry
        entry.thread.start()

    def _describe(self, name: str, entry: Running) -> str:
        latest = self.store.history(name, 1)
        ex = latest[0] if latest else None
        if ex is None or ex.scheduled_for is None or ex.scheduled_for != entry.scheduled_for.replace(microsecond=0):
            return f"{name}: run due at {_fmt(entry.scheduled_for)} {entry.status}"
        metrics = "".join(f" · {k} {v:.4g}" for k, v in ex.metrics.items())
        report = f" · report {ex.report_path}" if ex.report_path else ""
        error = f" · {ex.error}" if ex.error else ""
        return (f"{name}: execution {ex.id} (due {_fmt(entry.scheduled_for)}) {ex.status} in "
                f"{ex.duration_s or 0:.1f} s{metrics}{report}{error}")

    def _reap(self) -> None:
        with self._lock:
            for name in [n for n, r in self.running.items() if not r.thread.is_alive()]:
                del self.running[name]

    # -- loop ---------------------------------------------------------------------------------------
    def seconds_until_next(self) -> float:
        """How long to sleep: until the next due time of any job, at most ``poll`` seconds."""
        now = self.now()
        wait = self.poll
        for job in self.jobs.values():
            if job.schedule:
                upcoming = cron.next_runs(job.schedule, job.timezone, now, 1)[0]
                wait = min(wait, max((upcoming - now).total_seconds(), 0.0) + 0.5)
        return max(wait, 0.05)

    def run(self) -> None:
        """Loop until :meth:`stop`; then finish (or cancel) what is running."""
        self.prepare()
        self._recover()
        names = ", ".join(sorted(self._load())) or "none"
        self.echo(f"scheduler: started for {self.settings.project_root} (jobs: {names})")
        while not self._stopping:
            self.tick()
            if self._stopping:
                break
            self.sleep(self.seconds_until_next())
        self._drain()
        self.echo("scheduler: stopped")

    def stop(self, cancel: bool = False) -> None:
        """Stop starting executions; running ones finish (``cancel``: are cancelled now)."""
        self._stopping = True
        if cancel:
            self._cancel_now = True
            for entry in list(self.running.values()):
                entry.cancel.set()
        self._stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running executions (tests, and the end of ``run``)."""
        for entry in list(self.running.values()):
            entry.thread.join(timeout)
        self._reap()

    def _drain(self) -> None:
        if not self.running:
            return
        names = ", ".join(sorted(self.running))
        if not self._cancel_now:
            self.echo(f"scheduler: stopping; waiting up to {self.stop_timeout:g} s for {names}")
            deadline = _monotonic() + self.stop_timeout
            for entry in list(self.running.values()):
                while entry.thread.is_alive() and not self._cancel_now and _monotonic() < deadline:
                    entry.thread.join(0.2)
        if any(e.thread.is_alive() for e in self.running.values()):
            self.echo(f"scheduler: cancelling {', '.join(n for n, e in self.running.items() if e.thread.is_alive())}")
            for entry in self.running.values():
                entry.cancel.set()
        self.join()

    def _recover(self) -> None:
        """Executions left 'running' by a process that is gone are marked failed (interrupted)."""
        for ex in self.store.running():
            if ex.pid and not _alive(ex.pid):
                ex.status, ex.ended_at = "failed", utcnow()
                ex.error = f"interrupted: the process running it (pid {ex.pid}) stopped before it finished"
                self.store.update(ex)
                self.echo(f"{ex.job}: execution {ex.id} was interrupted (pid {ex.pid} gone); marked failed")


def _monotonic() -> float:
    import time

    return time.monotonic()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _retention_gc(settings: Settings) -> Callable[[datetime], object]:
    def run(now: datetime) -> object:
        from llmops_lab.jobs.retention import gc

        return gc(now=now, settings=settings)

    return run


def in_process_executor(settings: Settings) -> Executor:
    """Run executions in this process (tests, notebooks): papermill is not thread-safe, so one at a time."""
    gate = threading.Lock()

    def execute(job: Job, scheduled_for: datetime, cancel: threading.Event) -> str:
        from llmops_lab.jobs.execute import JobExecutor

        with gate:
            return JobExecutor(job, settings, trigger="schedule", scheduled_for=scheduled_for,
                               cancel=cancel).process().status

    return execute

