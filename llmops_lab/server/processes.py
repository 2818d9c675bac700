"""Child processes the server starts (the MLflow UI, job runs): started once per key, reaped, stopped
with the server. Each child leads its own process group so stopping it stops what it started."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

_children: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()


def llmops_command(*args: str) -> list[str]:
    """``llmops-lab ARGS`` with this server's interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "llmops_lab.cli", *args]


def running(key: str) -> subprocess.Popen | None:
    with _lock:
        proc = _children.get(key)
        return proc if proc is not None and proc.poll() is None else None


def start(key: str, argv: Sequence[str], cwd: Path, log: Path) -> tuple[subprocess.Popen, bool]:
    """(process, started_now): the live child for ``key``, or a new one writing to ``log``."""
    with _lock:
        proc = _children.get(key)
        if proc is not None and proc.poll() is None:
            return proc, False
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("JPY_SESSION_NAME", "LLMOPS_NOTEBOOK")}
        with open(log, "ab") as out:
            proc = subprocess.Popen(list(argv), cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _children[key] = proc
    # reap it when it exits, so no zombie is left behind a long-running server
    threading.Thread(target=proc.wait, name=f"llmops-lab-reap-{proc.pid}", daemon=True).start()
    return proc, True


def stop(key: str, timeout: float = 5.0) -> None:
    """Stop the child for ``key`` and its process group (SIGTERM, then SIGKILL)."""
    with _lock:
        proc = _children.pop(key, None)
    if proc is None or proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # our child leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def stop_all(prefix: str = "") -> None:
    with _lock:
        keys = [k for k in _children if k.startswith(prefix)]
    for key in keys:
        stop(key)
