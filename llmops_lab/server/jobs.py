"""Jobs for the panel: the list, a preview of a notebook as a job, promotion, and a run now.

Everything is :mod:`llmops_lab.jobs`' own logic; this module only shapes its answers as plain dicts.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from llmops_lab.server import processes
from llmops_lab.server.errors import ApiError, one_line
from llmops_lab.server.stores import Store

_JOB_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
PREVIEW_RUNS = 3
HISTORY_LIMIT = 10  # executions listed in a job's history by default
MAX_HISTORY = 200


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class Where:
    """Where the Jupyter server looks for files: its root, and whether its contents manager shows hidden
    files (``ContentsManager.allow_hidden``; the executed notebooks live in the hidden ``.llmops/``)."""

    root_dir: Path
    allow_hidden: bool = False


def _under_root(where: Where | None, path: str | None) -> tuple[str | None, bool]:
    """(path relative to the server root or None when outside it or missing, whether JupyterLab can open it)."""
    if where is None or not path:
        return None, False
    real = Path(path).resolve()
    base = where.root_dir.resolve()
    if not real.is_file() or base not in real.parents:
        return None, False
    relative = real.relative_to(base)
    hidden = any(part.startswith(".") for part in relative.parts)
    return relative.as_posix(), where.allow_hidden or not hidden


def execution_row(ex: Any, where: Where | None) -> dict[str, Any]:
    """One execution of a job (``jobs.store.Execution``) as the panel shows it in a job's history."""
    output, openable = _under_root(where, ex.output_path)
    report = bool(ex.report_path) and Path(ex.report_path).is_file()
    return {"id": ex.id, "status": ex.status, "trigger": ex.trigger, "started_at": _iso(ex.started_at),
            "ended_at": _iso(ex.ended_at), "duration_s": ex.duration_s, "metrics": dict(ex.metrics or {}),
            "run_id": ex.run_id, "error": one_line(ex.error) if ex.error else None, "report": report,
            "output_path": output, "output_openable": openable,
            "has_output": bool(ex.output_path) and Path(ex.output_path).is_file()}


def job_row(status: Any, root: Path, where: Where | None = None) -> dict[str, Any]:
    """A ``jobs.listing.JobStatus`` as the panel's job row."""
    job, last = status.job, status.last
    return {"name": job.name, "notebook": job.notebook, "schedule": job.schedule, "timezone": job.timezone,
            "schedule_text": status.description, "next_run": _iso(status.next_run),
            "last_status": status.last_status, "last_run_id": last.run_id if last else None,
            "last_started": _iso(last.started_at) if last else None,
            "last_metrics": dict(last.metrics) if last else {},
            "score": list(status.score) if status.score else None,
            "running": processes.running(_run_key(root, job.name)) is not None,
            "last_execution": execution_row(last, where) if last else None}


def list_jobs(store: Store, where: Where | None = None) -> dict[str, Any]:
    from llmops_lab.jobs.definition import load_jobs
    from llmops_lab.jobs.listing import list_jobs as listing

    if not load_jobs(store.settings.project_root):
        return {"jobs": []}  # nothing promoted: reading the panel must not create .llmops/jobs.db
    return {"jobs": [job_row(s, store.settings.project_root, where) for s in listing(store.settings)]}


def history(store: Store, name: str, limit: int = HISTORY_LIMIT, where: Where | None = None) -> dict[str, Any]:
    """The newest ``limit`` executions of job ``name`` (404 for an unknown job)."""
    from llmops_lab.jobs.listing import history as listing_history

    check_job_name(name)
    executions = listing_history(name, limit, settings=store.settings)
    return {"name": name, "executions": [execution_row(ex, where) for ex in executions]}


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return HISTORY_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_HISTORY:
        raise ApiError(400, f"limit={value!r} is invalid: use a whole number from 1 to {MAX_HISTORY}")
    return int(value)


def check_execution_id(value: str) -> int:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 12:
        raise ApiError(400, f"execution id {str(value)[:20]!r} is invalid: a whole number")
    return int(value)


def execution_file(store: Store, name: str, execution_id: int, what: str) -> Path:
    """The report (``what="report"``, HTML) or executed notebook (``"notebook"``) of one execution of job
    ``name``: the path recorded in the history, served only if it really is that job's file under
    ``<home>/jobs/<name>/`` (symlinks resolved), never another path of the disk."""
    from llmops_lab.jobs.definition import get_job
    from llmops_lab.jobs.store import store_for

    check_job_name(name)
    get_job(store.settings.project_root, name)  # 404 for an unknown job
    try:
        ex = store_for(store.settings.home).get(execution_id)
    except KeyError:
        ex = None
    if ex is None or ex.job != name:
        raise ApiError(404, f"job {name} has no execution {execution_id}")
    recorded = ex.report_path if what == "report" else ex.output_path
    suffix = ".html" if what == "report" else ".ipynb"
    label = "HTML report" if what == "report" else "executed notebook"
    if not recorded:
        raise ApiError(404, f"execution {execution_id} of job {name} has no {label}"
                            + (" (it failed before its notebook ran)" if what == "report" else ""))
    folder = (store.settings.home / "jobs" / name).resolve()
    real = Path(recorded).resolve()
    if folder not in real.parents or real.suffix != suffix:
        raise ApiError(403, f"the {label} of execution {execution_id} is outside .llmops/jobs/{name}/")
    if not real.is_file():
        raise ApiError(404, f"the {label} of execution {execution_id} of job {name} was deleted")
    return real


def check_job_name(name: str) -> str:
    if not isinstance(name, str) or not _JOB_NAME.match(name):
        raise ApiError(400, f"job name {str(name)[:60]!r} is invalid: letters, digits, '_' and '-'")
    return name


def _run_key(root: Path, name: str) -> str:
    return f"job:{root}:{name}"  # job names are unique per project, not per server


def run_now(store: Store, name: str) -> dict[str, Any]:
    """Start ``llmops-lab jobs run NAME`` in the project root as a child process; 409 while one runs."""
    from llmops_lab.jobs.definition import get_job

    check_job_name(name)
    get_job(store.settings.project_root, name)  # 404 (JobNotFoundError) before anything starts
    key = _run_key(store.settings.project_root, name)
    if processes.running(key) is not None:
        raise ApiError(409, f"job {name} is already running (started from this server)")
    proc, _ = processes.start(key, processes.llmops_command("jobs", "run", name), cwd=store.settings.project_root,
                              log=store.settings.home / "logs" / f"job-{name}.log")
    return {"name": name, "started": True, "pid": proc.pid}


def _value(info: dict[str, Any]) -> tuple[Any, str | None]:
    default = info.get("default")
    try:
        value = ast.literal_eval(default) if isinstance(default, str) else default
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = default  # an expression: shown as written
    declared = info.get("inferred_type_name")
    kind = declared if declared and declared != "None" else (type(value).__name__ if value is not None else None)
    if isinstance(value, tuple):
        value = list(value)
    return value, kind


def preview(store: Store, schedule: str | None, timezone: str = "UTC", now: datetime | None = None) -> dict[str, Any]:
    """What promoting ``store.notebook`` would give: its parameters, the schedule in words, next run times."""
    from llmops_lab.jobs import cron
    from llmops_lab.jobs.definition import check_schedule, check_timezone
    from llmops_lab.jobs.promotion import inspect_parameters, parameters_cell, read_notebook
    from llmops_lab.jobs.store import utcnow

    schedule = check_schedule(schedule)  # a bad cron line: 400 with the reason, before reading anything
    check_timezone(timezone)
    nb = read_notebook(store.notebook)
    has_cell = parameters_cell(nb) is not None
    parameters = {}
    if has_cell:
        for name, info in inspect_parameters(nb).items():
            value, kind = _value(info)
            parameters[name] = {"value": value, "type": kind}
    return {"notebook": _relative(store), "parameters": parameters, "parameters_cell": has_cell,
            "schedule": schedule, "timezone": timezone,
            "schedule_text": cron.describe(schedule) if schedule else None,
            "next_runs": [t.isoformat() for t in cron.next_runs(schedule, timezone, now or utcnow(), PREVIEW_RUNS)]
            if schedule else []}


def _relative(store: Store) -> str:
    try:
        return store.notebook.relative_to(store.settings.project_root.resolve()).as_posix()
    except ValueError:
        return store.notebook.name


def promote(store: Store, body: dict[str, Any], where: Where | None = None) -> dict[str, Any]:
    """Promote ``store.notebook`` into job ``name`` (409 if it exists); returns the new job row."""
    from llmops_lab.jobs.definition import load_jobs
    from llmops_lab.jobs.listing import list_jobs as listing
    from llmops_lab.jobs.promotion import promote as promote_notebook

    name = check_job_name(body.get("name"))
    schedule, parameters = body.get("schedule"), body.get("parameters") or {}
    if schedule is not None and not isinstance(schedule, str):
        raise ApiError(400, "schedule must be a cron expression string, e.g. \"0 2 * * *\"")
    if not isinstance(parameters, dict):
        raise ApiError(400, "parameters must be an object {name: value}")
    timezone = body.get("timezone") or "UTC"
    if name in load_jobs(store.settings.project_root):
        raise ApiError(409, f"job {name!r} already exists in llmops_jobs.toml: choose another name")
    promote_notebook(store.notebook, name, schedule or None, parameters, timezone=str(timezone),
                     settings=store.settings)
    return next(job_row(s, store.settings.project_root, where) for s in listing(store.settings) if s.name == name)
