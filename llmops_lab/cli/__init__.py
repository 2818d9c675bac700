"""``llmops-lab`` command: builds the parser from each command group's module and runs the command; a user
error is one line (``llmops-lab: error: …``, exit 2). Groups: cli/project.py (demo, init, ui, flush),
cli/local_model.py (local-model), cli/jobs.py (promote, jobs, scheduler, report), cli/trust.py (audit, forget, gc, server),
cli/serve.py (serve, serve key).
"""
from __future__ import annotations

import argparse
import sys

from llmops_lab.exceptions import LlmopsError


def build_parser() -> argparse.ArgumentParser:
    from llmops_lab.cli import jobs, local_model, project, serve, trust

    parser = argparse.ArgumentParser(prog="llmops-lab", description="Jupyter-first LLMOps on MLflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    project.add_commands(sub)  # demo, init, ui, flush
    local_model.add_commands(sub)
    jobs.add_commands(sub)
    trust.add_commands(sub)  # audit, forget, gc, server start, data-key new
    serve.add_commands(sub)  # serve, serve key create/list/revoke
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LlmopsError as err:
        from llmops_lab.trust.redaction import mask_secrets

        print(f"llmops-lab: error: {mask_secrets(str(err))}", file=sys.stderr)
        return 2

