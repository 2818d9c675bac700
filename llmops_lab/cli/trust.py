"""``llmops-lab audit``, ``forget``, ``gc``, ``server start`` and ``data-key new``: parsing and printing only
(work in analysis/audit.py, jobs/erasure.py, jobs/retention.py, trust/team.py, trust/at_rest.py)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    """Add the trust commands to the ``llmops-lab`` subparsers."""
    audit = sub.add_parser("audit", help="who ran what, from which notebook and commit, in a time range",
                           description="List llmops-lab runs (user, notebook, git commit, prompt version, dataset "
                                       "digest, redaction) from the tracking store.")
    audit.add_argument("--since", default="7d", help="start: 7d, 24h, 30m, 2w or a date (default 7d)")
    audit.add_argument("--until", help="end (exclusive): same forms; default now")
    audit.add_argument("--user", help="only this user's runs")
    audit.add_argument("--limit", type=int, default=10_000)
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--erasures", action="store_true", help="the forget/gc audit lines instead (never the text)")
    audit.set_defaults(func=_cmd_audit)

    forget = sub.add_parser("forget", help="delete every stored trace of a text, a user or a run",
                            description="Delete, for good, the MLflow runs (artifacts, traces), cache entries, spool "
                                        "records, staging folders, job outputs and (--contains) prompt versions "
                                        "that hold TEXT, belong to NAME, or are run ID; then vacuum the local "
                                        "sqlite files. The audit line records who and how many, never the text.")
    chosen = forget.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--contains", metavar="TEXT", help="case-insensitive, matched against what is stored "
                                                           "(records are stored redacted)")
    chosen.add_argument("--user", metavar="NAME", help="runs whose user tag is NAME, and what came from them")
    chosen.add_argument("--run", metavar="ID", help="one run, its child runs and its traces")
    forget.add_argument("--dry-run", action="store_true", help="report only; delete nothing")
    forget.add_argument("--json", action="store_true", help="the report as JSON")
    forget.set_defaults(func=_cmd_forget)

    gc = sub.add_parser("gc", help="apply [tool.llmops-lab.retention]: delete what is older than its limits",
                        description="Hard-delete runs (with artifacts and traces), traces, cache entries, "
                                    "acknowledged spool records and job outputs older than the retention limits.")
    gc.add_argument("--dry-run", action="store_true", help="report only; delete nothing")
    gc.add_argument("--json", action="store_true", help="the report as JSON")
    gc.set_defaults(func=_cmd_gc)

    server = sub.add_parser("server", help="run a team MLflow tracking server with basic auth",
                            description="Start `mlflow server --app-name basic-auth` with a database backend and an "
                                        "artifact root. Secrets come from the environment only; creating an "
                                        "experiment or a prompt needs EDIT, like logging.")
    ssub = server.add_subparsers(dest="server_command", required=True)
    start = ssub.add_parser("start", help="start the server in the foreground (Ctrl-C stops it)")
    start.add_argument("--host", default="127.0.0.1", help="interface (0.0.0.0 for a team; see docs/security.md)")
    start.add_argument("--port", type=int, default=5000)
    start.add_argument("--backend-store-uri", help="database URI (default: sqlite under .llmops/server/); one with "
                                                   "a password belongs in LLMOPS_SERVER_BACKEND_URI (mlflow gets it "
                                                   "through its environment either way, never its arguments)")
    start.add_argument("--artifacts-destination", help="artifact root (path, s3://...; default .llmops/server/artifacts)")
    start.add_argument("--default-permission", default="READ", help="what a new user may do: READ (default), EDIT, "
                                                                    "MANAGE, NO_PERMISSIONS")
    start.add_argument("--workers", type=int, default=1)
    start.add_argument("--allowed-hosts", help="Host headers accepted (needed with --host 0.0.0.0)")
    start.add_argument("--tls-cert", help="serve https with this certificate (PEM; see docs/security.md)")
    start.add_argument("--tls-key", help="the private key of --tls-cert (PEM, mode 0600)")
    start.add_argument("--no-auth", dest="auth", action="store_false", help="no authentication (single user only)")
    start.add_argument("--dry-run", action="store_true", help="print the command, do not start")
    start.set_defaults(func=_cmd_server_start)

    data_key = sub.add_parser("data-key", help="the key that encrypts the spool, staged rows and the cache",
                              description="LLMOPS_DATA_KEY encrypts what llmops-lab writes under .llmops/ (spool, "
                                          "staging, cache.db); it is read from the environment only.")
    dsub = data_key.add_subparsers(dest="data_key_command", required=True)
    new = dsub.add_parser("new", help="print a fresh key: export LLMOPS_DATA_KEY=$(llmops-lab data-key new)")
    new.set_defaults(func=_cmd_data_key_new)


def _cmd_audit(args: argparse.Namespace) -> int:
    from llmops_lab.analysis.audit import audit_log, format_table

    if args.erasures:
        from llmops_lab.jobs.erasure import erasures

        for line in erasures():
            print(json.dumps(line) if args.json else
                  f"{line['time']}  {line['user']}  {line['operation']} --{line['selector']}  "
                  + " ".join(f"{k}={v}" for k, v in line["counts"].items() if v))
        return 0
    frame = audit_log(args.since, args.until, user=args.user, limit=args.limit)
    if args.json:
        for row in frame.to_dict("records"):
            print(json.dumps({k: (str(v) if k == "time" else v) for k, v in row.items()}, default=str))
    else:
        print(format_table(frame))
    return 0


def _print_report(report: Any, as_json: bool) -> int:
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.describe())
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.erasure import forget

    return _print_report(forget(contains=args.contains, user=args.user, run=args.run, dry_run=args.dry_run),
                         args.json)


def _cmd_gc(args: argparse.Namespace) -> int:
    from llmops_lab.jobs.retention import gc

    return _print_report(gc(dry_run=args.dry_run), args.json)


def _cmd_server_start(args: argparse.Namespace) -> int:
    from llmops_lab.config import get_settings
    from llmops_lab.trust.team import exec_server, plan_server

    plan = plan_server(get_settings().home, host=args.host, port=args.port, backend_store_uri=args.backend_store_uri,
                       artifacts_destination=args.artifacts_destination, auth=args.auth,
                       default_permission=args.default_permission, workers=args.workers,
                       allowed_hosts=args.allowed_hosts, tls_cert=args.tls_cert, tls_key=args.tls_key)
    print(plan.describe(), flush=True)
    for warning in plan.warnings:
        print(warning, file=sys.stderr, flush=True)
    if plan.users_note():
        print(plan.users_note(), flush=True)
    if args.dry_run:
        return 0
    print(f"clients: MLFLOW_TRACKING_URI={plan.scheme}://{args.host}:{args.port}"
          + (" with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in their environment" if args.auth else ""),
          flush=True)
    exec_server(plan)
    return 0  # not reached


def _cmd_data_key_new(args: argparse.Namespace) -> int:
    from llmops_lab.trust.at_rest import key_id, new_key

    key = new_key()
    print(key)  # alone on stdout, so $(llmops-lab data-key new) is the key
    print(f"key id {key_id(key)}: keep the key in a password manager or secret store; without it the encrypted "
          "spool, staged rows and cached answers cannot be read", file=sys.stderr)
    return 0
