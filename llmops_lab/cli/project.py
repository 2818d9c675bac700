"""``llmops-lab demo``, ``init``, ``ui``, ``flush``: the project's commands. Parsing and printing only."""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

DEMO_NOTEBOOK = Path("notebooks/01_quickstart.ipynb")
EVAL_NOTEBOOK = Path("notebooks/eval.ipynb")


def _cmd_demo(args: argparse.Namespace) -> int:
    from llmops_lab.config import get_settings
    from llmops_lab.jobs.notebooks import execute_notebook
    from llmops_lab.cli.scaffold import copy_quickstart, ensure_project

    marker = ensure_project(Path.cwd())  # outside any project: this folder becomes one
    if marker:
        print(f"made {marker.parent} an llmops-lab project (wrote {marker.name})")
    settings = get_settings()
    source = Path(args.notebook)
    if not source.is_absolute():
        source = settings.project_root / source
    if args.notebook == str(DEMO_NOTEBOOK) and copy_quickstart(source):
        print(f"copied the quickstart notebook to {source}")
    output = Path(args.output) if args.output else settings.home / "demo" / source.name
    print(f"running {source} on {settings.model} (tracking: {settings.resolved_tracking_uri()}) …", flush=True)
    execute_notebook(source, output, settings, parameters=dict(p.split("=", 1) for p in args.parameter))
    print(f"executed notebook: {output}")
    print(f"browse the runs it logged:  {_self_command()} ui   (then open http://127.0.0.1:5000)")
    return 0


def _self_command() -> str:
    """``llmops-lab`` if PATH finds this very executable, else its path (relative under the current folder)."""
    exe = Path(sys.argv[0])
    if exe.name != "llmops-lab":
        exe = Path(sys.executable).with_name("llmops-lab")
    if not exe.is_file():
        return f"{shlex.quote(sys.executable)} -m llmops_lab.cli"
    found = shutil.which("llmops-lab")
    if found and os.path.samefile(found, exe):
        return "llmops-lab"
    relative = os.path.relpath(exe.absolute())
    return shlex.quote(str(exe.absolute()) if relative.startswith("..") else relative)


def _cmd_init(args: argparse.Namespace) -> int:
    from llmops_lab.cli.scaffold import init_project

    folder = Path(args.folder)
    for step in init_project(folder):
        shown = os.path.relpath(step.path, folder)
        print(f"{step.action:<8} {shown}  ({step.detail})")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(args.folder)} && "
    print(f"next: {where}jupyter lab {EVAL_NOTEBOOK}   "
          f"(or as a job: llmops-lab promote {EVAL_NOTEBOOK} --name eval)")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from llmops_lab.config import get_settings

    settings = get_settings()
    uri = settings.resolved_tracking_uri()
    if not uri.startswith("sqlite:"):
        print(f"tracking store is {uri}: open it directly (llmops-lab ui serves the local sqlite store)")
        return 1
    settings.home.mkdir(parents=True, exist_ok=True)
    # One worker and no background job runner (MLflow's default is 4 workers + huey consumers, ~15
    # processes): a local, single-user UI then starts without starving a kernel on a small machine.
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--default-artifact-root",
               str(settings.home / "artifacts"), "--host", args.host, "--port", str(args.port),
               "--workers", str(args.workers)]
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    print(f"MLflow UI on http://{args.host}:{args.port}  (store: {uri})", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def _cmd_flush(args: argparse.Namespace) -> int:
    from llmops_lab import tracking

    tracking.replay_if_needed()
    left = tracking.flush(args.timeout)
    tracker = tracking.get_tracker()
    print(f"replayed {tracker.replayed} record(s) from the spool; {left} still waiting")
    for reason in tracker.undecryptable.values():  # kept for when LLMOPS_DATA_KEY is back
        print(f"error: {reason}", file=sys.stderr)
    return 0 if not left and not tracker.undecryptable else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """demo, init, ui, flush."""
    demo = sub.add_parser("demo", help="run the quickstart notebook on the embedded model and log it to MLflow")
    demo.add_argument("--notebook", default=str(DEMO_NOTEBOOK))
    demo.add_argument("--output")
    demo.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    demo.set_defaults(func=_cmd_demo)
    init = sub.add_parser("init", help="scaffold a project: [tool.llmops-lab] settings, notebooks/eval.ipynb, .gitignore",
                          description="Add llmops-lab to a folder; existing files are never overwritten.")
    init.add_argument("folder", nargs="?", default=".", help="the project folder (default: the current one)")
    init.set_defaults(func=_cmd_init)
    ui = sub.add_parser("ui", help="start the MLflow UI on the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--workers", type=int, default=1, help="server worker processes (MLflow's default is 4)")
    ui.set_defaults(func=_cmd_ui)
    flush = sub.add_parser("flush", help="write records left in the spool to MLflow")
    flush.add_argument("--timeout", type=float, default=60.0)
    flush.set_defaults(func=_cmd_flush)
