"""``llmops-lab`` command: demo, ui, flush, local-model. Parsing and printing only."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from .errors import ConfigError, LlmopsError

DEMO_NOTEBOOK = Path("notebooks/01_quickstart.ipynb")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .config import get_settings
    from .notebooks import execute_notebook

    settings = get_settings()
    source = Path(args.notebook)
    if not source.is_absolute():
        source = settings.project_root / source
    output = Path(args.output) if args.output else settings.home / "demo" / source.name
    print(f"running {source} on {settings.model} (tracking: {settings.resolved_tracking_uri()}) …", flush=True)
    execute_notebook(source, output, settings, parameters=dict(p.split("=", 1) for p in args.parameter))
    print(f"executed notebook: {output}")
    print("browse the runs it logged:  .venv/bin/llmops-lab ui   (then open http://127.0.0.1:5000)")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from .config import get_settings

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
    from . import tracking

    tracking.replay_if_needed()
    left = tracking.flush(args.timeout)
    tracker = tracking.get_tracker()
    print(f"replayed {tracker.replayed} record(s) from the spool; {left} still waiting")
    return 0 if not left else 1


def _cmd_local_model(args: argparse.Namespace) -> int:
    from .providers import local

    if args.action == "status":
        for name, state in local.status().items():
            ready = "ready" if state["installed"] else f"not installed ({local.INSTALL_HINT})"
            print(f"local:{name}  {ready}  {state['path'] or ''}")
        return 0
    path = local.model_path(args.model)
    if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("uvicorn") is None \
            or importlib.util.find_spec("sse_starlette") is None:
        raise ConfigError("the server needs llama-cpp-python's server extras: pip install 'llmops-lab[serve]'")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", args.model,
               "--host", args.host, "--port", str(args.port)]
    print(f"OpenAI-compatible server for local:{args.model} on http://{args.host}:{args.port}/v1", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops-lab", description="Jupyter-first LLMOps on MLflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the quickstart notebook on the embedded model and log it to MLflow")
    demo.add_argument("--notebook", default=str(DEMO_NOTEBOOK))
    demo.add_argument("--output")
    demo.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    demo.set_defaults(func=_cmd_demo)
    ui = sub.add_parser("ui", help="start the MLflow UI on the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--workers", type=int, default=1, help="server worker processes (MLflow's default is 4)")
    ui.set_defaults(func=_cmd_ui)
    flush = sub.add_parser("flush", help="write records left in the spool to MLflow")
    flush.add_argument("--timeout", type=float, default=60.0)
    flush.set_defaults(func=_cmd_flush)
    lm = sub.add_parser("local-model", help="the embedded model: status, or serve it OpenAI-compatibly")
    lm.add_argument("action", choices=["status", "serve"])
    lm.add_argument("--model", default="smollm2-135m")
    lm.add_argument("--host", default="127.0.0.1")
    lm.add_argument("--port", type=int, default=8080)
    lm.set_defaults(func=_cmd_local_model)
    from .jobs.cli import add_commands

    add_commands(sub)
    from .trust_cli import add_commands as add_trust_commands

    add_trust_commands(sub)  # audit, server start
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LlmopsError as err:
        from .redaction import mask_secrets

        print(f"llmops-lab: error: {mask_secrets(str(err))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
