"""What ``jobs list`` and ``jobs history`` show, from the job definitions and the history store."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from llmops_lab.config import Settings, get_settings
from llmops_lab.jobs import cron
from llmops_lab.jobs.definition import Job, get_job, load_jobs
from llmops_lab.jobs.store import FINAL, Execution, store_for, utcnow


@dataclass
class JobStatus:
    job: Job
    description: str | None  # the schedule in words
    next_run: datetime | None
    last: Execution | None  # the newest execution (any status, running included)
    score: tuple[str, float] | None  # the gate metric of the last finished execution (else its first metric)

    @property
    def name(self) -> str:
        return self.job.name

    @property
    def last_status(self) -> str | None:
        return self.last.status if self.last else None


def list_jobs(settings: Settings | None = None, now: datetime | None = None) -> list[JobStatus]:
    """Every job with its next run time, last status and last score."""
    settings = settings or get_settings()
    store = store_for(settings.home)
    now = now or utcnow()
    out = []
    for name, job in sorted(load_jobs(settings.project_root).items()):
        recent = store.history(name, 1)
        finished = store.latest(name, FINAL)
        score = None
        if finished is not None and finished.metrics:
            metric = next((g.metric for g in job.gates if g.metric in finished.metrics), next(iter(finished.metrics)))
            score = (metric, finished.metrics[metric])
        next_run = cron.next_runs(job.schedule, job.timezone, now, 1)[0] if job.schedule else None
        out.append(JobStatus(job, cron.describe(job.schedule) if job.schedule else None, next_run,
                             recent[0] if recent else None, score))
    return out


def history(name: str, limit: int | None = 20, settings: Settings | None = None) -> list[Execution]:
    """The executions of job ``name``, newest first."""
    settings = settings or get_settings()
    get_job(settings.project_root, name)  # an unknown job is an error, not an empty list
    return store_for(settings.home).history(name, limit)
