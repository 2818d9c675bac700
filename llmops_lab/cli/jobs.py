"""``llmops-lab promote | jobs list/run/history/export/remove | scheduler | report``: parsing and printing.

Imports stay light here (the CLI builds its parser on every call); the work is in the jobs modules.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

TARGETS = ("airflow", "cron", "github-actions")


def add_commands(sub: Any) -> None:
    """Add the job commands to the ``llmops-lab`` subparsers."""
    p = sub.add_parser("promote", help="promote a notebook into a (scheduled) evaluation job",
                       description="Validate a notebook as a job and write it to llmops_jobs.toml.")
    p.add_argument("notebook", help="the .ipynb (inside the project)")
    p.add_argument("--name", required=True, help="job name: letters, digits, '_' and '-'")
    p.add_argument("--schedule", help='cron expression, e.g. "0 2 * * *" (omit for an on-demand job)')
    p.add_argument("--timezone", default="UTC", help="IANA timezone of the schedule (default UTC)")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the notebook's parameters cell, typed by its default")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per attempt (default 3600)")
    p.add_argument("--retries", type=int, default=0, help="extra attempts after a failure (default 0)")
    p.add_argument("--kernel", help="kernel name (default: the notebook's)")
    p.add_argument("--gate", metavar="METRIC", help="regression gate on a recorded metric")
    p.add_argument("--min", type=float, dest="gate_min", help="gate: the metric must be >= this")
    p.add_argument("--max", type=float, dest="gate_max", help="gate: the metric must be <= this")
    p.add_argument("--max-drop", type=float, dest="gate_max_drop", help="gate: largest drop vs the baseline")
    p.add_argument("--baseline", default="previous",
                   help='gate baseline: "previous" completed execution (default) or a pinned MLflow run id')
    p.add_argument("--add-parameters-cell", action="store_true",
                   help="make a 'parameters' cell from the first cell's assignments if there is none")
    p.add_argument("--replace", action="store_true", help="redefine an existing job")
    p.set_defaults(func=_cmd_promote)

    jobs = sub.add_parser("jobs", help="list, run, inspect and export jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", required=True)
    ls = jsub.add_parser("list", help="jobs with schedule, next run, last status and last score")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_cmd_list)
    run = jsub.add_parser("run", help="run a job now, as the scheduler would (exit 1 if failed or regressed)")
    run.add_argument("name")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter for this execution")
    run.add_argument("--trigger", default="manual", choices=["manual", "schedule", "ci", "cron", "airflow"],
                     help=argparse.SUPPRESS)
    run.add_argument("--scheduled-for", help=argparse.SUPPRESS)
    run.set_defaults(func=_cmd_run)
    hist = jsub.add_parser("history", help="executions with status, duration, metrics and report path")
    hist.add_argument("name")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=_cmd_history)
    exp = jsub.add_parser("export", help="an Airflow DAG, a crontab line or a GitHub Actions workflow")
    exp.add_argument("name")
    exp.add_argument("--to", required=True, choices=TARGETS)
    exp.add_argument("--output", "-o", help="write to this file (default: print)")
    exp.add_argument("--airflow-operator", choices=["bash", "papermill"],
                     help="airflow: bash (default) runs `llmops-lab jobs run` (gate, history, MLflow run); "
                          "papermill runs the notebook alone in --kernel")
    exp.add_argument("--kernel", help="airflow papermill: a kernelspec of the project's venv "
                                      "(python -m ipykernel install --user --name NAME)")
    exp.add_argument("--install", metavar="SPEC",
                     help="github-actions: llmops-lab==VERSION (default: this version), git+https://HOST/PATH[@REF] "
                          "or the path of an llmops_lab-*.whl in the repository")
    exp.set_defaults(func=_cmd_export)
    rm = jsub.add_parser("remove", help="remove a job from llmops_jobs.toml (its history stays)")
    rm.add_argument("name")
    rm.set_defaults(func=_cmd_remove)

    sched = sub.add_parser("scheduler", help="long-running: run due jobs (Ctrl-C or SIGTERM to stop)")
    sched.add_argument("--poll", type=float, default=30.0, help="seconds between checks at most (default 30)")
    sched.add_argument("--max-parallel", type=int, default=4, help="executions at once (default 4)")
    sched.add_argument("--stop-timeout", type=float, default=60.0,
                       help="on stop, seconds to let running executions finish before cancelling (default 60)")
    sched.add_argument("--once", action="store_true", help="run what is due now, wait for it, exit")
    sched.set_defaults(func=_cmd_scheduler)

    rep = sub.add_parser("report", help="render a job's report (templates/report.ipynb) to HTML")
    rep.add_argument("name")
    rep.add_argument("--output", "-o", help="HTML path (default .llmops/jobs/NAME/report.html)")
    rep.add_argument("--limit", type=int, default=50, help="executions to include (default 50)")
    rep.set_defaults(func=_cmd_report)


# -- helpers ------------------------------------------------------------------------------------------

def _settings():
    from llmops_lab.config import get_settings

    return get_settings()


def _rel(path: str | None, root: Path) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip() if moment else "-"


def _cancel_on_signals() -> threading.Event:
    """SIGTERM / first Ctrl-C: cancel the execution cleanly (the kernel is interrupted, the partial notebook
    kept, the execution recorded as cancelled). A second Ctrl-C interrupts at once."""
    cancel = threading.Event()

    def handler(signum, frame):
        if cancel.is_set() and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        print(f"llmops-lab: {signal.Signals(signum).name}: cancelling the execution…", file=sys.stderr, flush=True)
        cancel.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return cancel


# -- commands -----------------------------------------------------------------------------------------

def _cmd_promote(args: argparse.Namespace) -> int:
    from llmops_lab.exceptions import JobDefinitionError
    from llmops_lab.jobs.promotion import parse_assignments, promote

    gate = None
    limits = {"min": args.gate_min, "max": args.gate_max, "max_drop": args.gate_max_drop}
    if args.gate:
        gate = {"metric": args.gate, **{k: v for k, v in limits.items() if v is not None}}
        if args.baseline != "previous":
            gate["baseline"] = args.baseline
    elif any(v is not None for v in limits.values()) or args.baseline != "previous":
        raise JobDefinitionError("--min, --max, --max-drop and --baseline need --gate METRIC")
    result = promote(args.notebook, args.name, args.schedule, parse_assignments(args.parameter),
                     timezone=args.timezone, kernel=args.kernel, timeout=args.timeout, retries=args.retries,
                     gate=gate, add_parameters_cell=args.add_parameters_cell, replace=args.replace)
    print(result.summary())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.listing import list_jobs

    statuses = list_jobs(_settings())
    if args.json:
        print(json.dumps([{"name": s.name, "notebook": s.job.notebook, "schedule": s.job.schedule,
                           "timezone": s.job.timezone, "next_run": s.next_run.isoformat() if s.next_run else None,
                           "last_status": s.last_status,
                           "last_score": {"metric": s.score[0], "value": s.score[1]} if s.score else None}
                          for s in statuses], indent=2))
        return 0
    if not statuses:
        print("no jobs yet: llmops-lab promote NOTEBOOK --name NAME --schedule \"0 2 * * *\"")
        return 0
    rows = [("NAME", "SCHEDULE", "NEXT RUN", "LAST STATUS", "LAST SCORE")]
    for s in statuses:
        schedule = f"{s.job.schedule} ({s.description}, {s.job.timezone})" if s.job.schedule else "manual"
        score = f"{s.score[0]} {s.score[1]:.4g}" if s.score else "-"
        rows.append((s.name, schedule, _when(s.next_run), s.last_status or "never run", score))
    print(_table(rows))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.execute import run_job
    from llmops_lab.jobs.promotion import parse_assignments
    from llmops_lab.jobs.store import parse_iso

    settings = _settings()
    cancel = _cancel_on_signals()
    scheduled = parse_iso(args.scheduled_for) if args.scheduled_for else None
    ex = run_job(args.name, parse_assignments(args.parameter) or None, trigger=args.trigger,
                 scheduled_for=scheduled, cancel=cancel, settings=settings,
                 echo=lambda line: print(line, flush=True))
    root = settings.project_root
    print(f"  notebook: {_rel(ex.output_path, root)}")
    print(f"  report:   {_rel(ex.report_path, root)}")
    if ex.run_id:
        print(f"  MLflow run: {ex.run_id}")
    if ex.gate is not None:
        print(f"  gate: {'passed' if ex.gate['passed'] else 'BREACHED'}: {ex.gate['reason']}")
    for warning in ex.stats.get("warnings", []):
        print(f"  warning: {warning}")
    if ex.status == "completed":
        return 0
    print(f"llmops-lab: job {ex.job} {ex.status}: {ex.error}", file=sys.stderr)
    return 1


def _cmd_history(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.listing import history

    settings = _settings()
    executions = history(args.name, args.limit, settings)
    if args.json:
        print(json.dumps([e.to_dict() for e in executions], indent=2, default=str))
        return 0
    if not executions:
        print(f"job {args.name} has not run yet: llmops-lab jobs run {args.name}")
        return 0
    rows = [("ID", "STARTED (UTC)", "TRIGGER", "STATUS", "DURATION", "TRIES", "METRICS", "REPORT")]
    for e in executions:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in e.metrics.items()) or "-"
        duration = f"{e.duration_s:.1f} s" if e.duration_s is not None else "-"
        rows.append((str(e.id), e.started_at.strftime("%Y-%m-%d %H:%M:%S"), e.trigger, e.status, duration,
                     str(e.attempts), metrics, _rel(e.report_path, settings.project_root)))
    print(_table(rows))
    for e in executions:
        if e.error:
            print(f"  {e.id}: {e.error}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.exports import SUGGESTED, export

    text = export(args.name, args.to, operator=args.airflow_operator, kernel=args.kernel, install=args.install)
    if not args.output:
        sys.stdout.write(text)
        if args.to in SUGGESTED:
            print(f"# save as {SUGGESTED[args.to].format(name=args.name)}", file=sys.stderr)
        return 0
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.promotion import remove

    job = remove(args.name)
    print(f"removed job {job.name} ({job.notebook}) from llmops_jobs.toml; its history is kept")
    return 0


def _cmd_scheduler(args: argparse.Namespace) -> int:
    from llmops_lab.exceptions import ConfigError
    from llmops_lab.jobs.scheduler import Scheduler

    if args.max_parallel < 1 or args.poll <= 0 or args.stop_timeout < 0:
        raise ConfigError("--max-parallel must be >= 1, --poll > 0 and --stop-timeout >= 0")

    def echo(line: str) -> None:
        print(f"{datetime.now().astimezone().isoformat(timespec='seconds')} {line}", flush=True)

    scheduler = Scheduler(_settings(), poll=args.poll, max_parallel=args.max_parallel,
                          stop_timeout=args.stop_timeout, echo=echo)
    if args.once:
        scheduler.prepare()
        result = scheduler.tick()
        scheduler.join()
        if not result.started:
            echo("scheduler: nothing due")
        return 0
    signals = {"count": 0}

    def handler(signum, frame):
        signals["count"] += 1
        if signals["count"] == 1:
            echo(f"scheduler: {signal.Signals(signum).name}: stopping (again to cancel running executions)")
            scheduler.stop()
        else:
            scheduler.stop(cancel=True)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    scheduler.run()
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.report import render_report

    settings = _settings()
    html = render_report(args.name, settings, Path(args.output) if args.output else None, limit=args.limit)
    print(f"report: {_rel(str(html), settings.project_root)}")
    print(f"notebook: {_rel(str(html.with_suffix('.ipynb')), settings.project_root)}")
    return 0
