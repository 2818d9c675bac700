"""``llmops-lab serve``: the OpenAI-compatible endpoint for promoted prompts, and its API keys."""
from __future__ import annotations

import argparse
import json

from llmops_lab.exceptions import ConfigError


def _store():
    from llmops_lab.config import get_settings
    from llmops_lab.gateway.keys import KeyStore

    return KeyStore(get_settings().home)


def _cmd_serve(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys

    import uvicorn

    if args.workers < 1:
        raise ConfigError("--workers must be 1 or more")
    if args.max_body_kb < 1:
        raise ConfigError("--max-body-kb must be 1 or more")
    if args.window_s <= 0:
        raise ConfigError("--window-s must be more than 0 (seconds of requests per MLflow run)")
    os.environ["LLMOPS_SERVE_MAX_BODY"] = str(args.max_body_kb * 1000)  # read by every worker's factory
    os.environ["LLMOPS_SERVE_WINDOW_S"] = str(args.window_s)
    print(f"llmops-lab serve: http://{args.host}:{args.port}/v1 ({args.workers} worker(s)); "
          "keys: llmops-lab serve key create NAME", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: exit 0 then, through atexit, so
    # the tracker writes what the last requests spooled (what it cannot write stays in the spool)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run("llmops_lab.gateway.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, timeout_graceful_shutdown=30)
    return 0


def _cmd_key_create(args: argparse.Namespace) -> int:
    prompts = [p.strip() for p in (args.prompts or "").split(",") if p.strip()]
    key = _store().create(args.name, prompts=prompts, max_cost_day=args.max_cost_day, rpm=args.rpm)
    print(key)
    print(f"key {args.name} created; it is shown only this once: store it now", flush=True)
    return 0


def _cmd_key_list(args: argparse.Namespace) -> int:
    keys = _store().list()
    if args.json:
        print(json.dumps([{"name": k.name, "prompts": list(k.prompts), "max_cost_day": k.max_cost_day,
                           "rpm": k.rpm, "created_ms": k.created_ms, "revoked": k.revoked} for k in keys]))
        return 0
    if not keys:
        print("no keys: llmops-lab serve key create NAME")
    for k in keys:
        scope = ",".join(k.prompts) or "all prompts and models"
        limits = " ".join(part for part in (f"rpm={k.rpm}" if k.rpm else "",
                                            f"max_cost_day=${k.max_cost_day:g}" if k.max_cost_day is not None else "")
                          if part)
        print(f"{k.name}\t{'revoked' if k.revoked else 'active'}\t{scope}\t{limits}".rstrip())
    return 0


def _cmd_key_revoke(args: argparse.Namespace) -> int:
    _store().revoke(args.name)
    print(f"key {args.name} revoked")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve promoted prompts as an OpenAI-compatible API (prompt:NAME@ALIAS)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; put TLS in front)")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--max-body-kb", type=int, default=1000, help="larger request bodies get 413")
    serve.add_argument("--window-s", type=float, default=10.0,
                       help="requests of one prompt and key are one MLflow run per this many seconds")
    serve.add_argument("--log-level", default="warning")
    serve.set_defaults(func=_cmd_serve)
    keys = serve.add_subparsers(dest="serve_command").add_parser("key", help="API keys of the endpoint")
    key_sub = keys.add_subparsers(dest="key_command", required=True)
    create = key_sub.add_parser("create", help="create a key (printed once; stored hashed)")
    create.add_argument("name")
    create.add_argument("--prompts", help="comma-separated prompt names this key may call (default: all, and "
                                          "plain models)")
    create.add_argument("--max-cost-day", type=float, help="USD per UTC day; over it requests get 429")
    create.add_argument("--rpm", type=int, help="requests per minute (per worker); over it requests get 429")
    create.set_defaults(func=_cmd_key_create)
    listing = key_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_cmd_key_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key: its requests get 401 from then on")
    revoke.add_argument("name")
    revoke.set_defaults(func=_cmd_key_revoke)
