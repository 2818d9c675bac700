"""``llmops-lab local-model status|serve``: the embedded model. Parsing and printing only."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from llmops_lab.exceptions import ConfigError, LlmopsError


def _cmd_local_model(args: argparse.Namespace) -> int:
    from llmops_lab.providers import local

    if args.action == "status":
        return _local_model_status(local)
    path = local.model_path(args.model)
    if importlib.util.find_spec("llama_cpp.server") is None or importlib.util.find_spec("uvicorn") is None \
            or importlib.util.find_spec("sse_starlette") is None:
        raise ConfigError("the server needs llama-cpp-python's server extras: pip install 'llmops-lab[serve]'")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", args.model,
               "--host", args.host, "--port", str(args.port)]
    print(f"OpenAI-compatible server for local:{args.model} on http://{args.host}:{args.port}/v1", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def _local_model_status(local) -> int:
    """Installed?, the build's CPU features, and whether the worker answers a short prompt (exit 1 if not)."""
    states = local.status()
    for name, state in states.items():
        ready = "ready" if state["installed"] else f"not installed ({local.INSTALL_HINT})"
        print(f"local:{name}  {ready}  {state['path'] or ''}")
    if not all(state["installed"] for state in states.values()):
        return 1
    try:
        result = local.check()
    except LlmopsError as err:
        print(f"llmops-lab: error: the embedded model does not answer: {err}", file=sys.stderr)
        return 1
    print(f"llama-cpp-python {result['version']}  build: {result['system_info']}")
    print(f"worker pid {result['pid']} answers: started in {result['worker_start_s']:.2f} s, "
          f"a 4-token answer in {result['answer_s']:.2f} s")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """local-model."""
    lm = sub.add_parser("local-model", help="the embedded model: status, or serve it OpenAI-compatibly")
    lm.add_argument("action", choices=["status", "serve"])
    lm.add_argument("--model", default="smollm2-135m")
    lm.add_argument("--host", default="127.0.0.1")
    lm.add_argument("--port", type=int, default=8080)
    lm.set_defaults(func=_cmd_local_model)
