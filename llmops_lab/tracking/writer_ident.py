"""Which writer process serves a kernel, and where its files are: shared by the client and the process.

A writer process is one per project home *and* tracking destination: its identity hashes the home, the
tracking URI, the MLflow credentials, ``LLMOPS_DATA_KEY`` and the insecure-transport setting, so kernels with
another store, other credentials or another data key get their own writer and never share spool files. The
secrets enter the hash through PBKDF2 (the identity is part of file names); they reach the process only
through its environment at spawn, never a command line or a file.

Files in ``<home>``: ``writer-<id>.lock`` (flock held by the live writer; holds its pid), ``writer-<id>.json``
(its status: counters, last error), ``writer-<id>.wake`` (touched by a flush: retry now), and the log
``logs/writer-<id>.log`` (its stdout and stderr).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_lab.config import Settings

ID_ENV = "LLMOPS_WRITER_ID"
SECRET_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "LLMOPS_DATA_KEY")


def identity(settings: Settings, environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    public = "\0".join([str(settings.home.resolve()), settings.resolved_tracking_uri(),
                        str(settings.allow_insecure_transport)])
    secrets = "\0".join(environ.get(name, "") for name in SECRET_ENV)
    salt = hashlib.sha256(public.encode()).digest()
    return hashlib.pbkdf2_hmac("sha256", secrets.encode(), salt, 20_000).hex()[:12]


@dataclass(frozen=True)
class WriterPaths:
    home: Path
    writer_id: str

    @property
    def spool(self) -> Path:
        return self.home / "spool"

    @property
    def lock(self) -> Path:
        return self.home / f"writer-{self.writer_id}.lock"

    @property
    def status(self) -> Path:
        return self.home / f"writer-{self.writer_id}.json"

    @property
    def wake(self) -> Path:
        return self.home / f"writer-{self.writer_id}.wake"

    @property
    def log(self) -> Path:
        return self.home / "logs" / f"writer-{self.writer_id}.log"

    def owns(self, spool_file: Path) -> bool:
        """A spool file of this writer's kernels (its id in the name)."""
        return spool_file.name.endswith(f"-w{self.writer_id}.jsonl")


def is_legacy(spool_file: Path) -> bool:
    """A spool file of a thread writer (or of a version before the writer process): no writer id in its name."""
    return "-w" not in spool_file.name


def lock_is_free(path: Path) -> bool:
    """True when no process holds ``path``'s flock (a writer or spool file whose process is gone)."""
    try:
        handle = open(path, "a")
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        handle.close()  # closing releases a lock we took
    return True


def read_status(paths: WriterPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.status.read_text())
    except (OSError, ValueError):
        return {}


def writer_pid(paths: WriterPaths) -> int | None:
    """The live writer's pid, or None when none runs."""
    if lock_is_free(paths.lock):
        return None
    try:
        return int(paths.lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def stop_writers(home: Path, timeout: float = 5.0) -> list[int]:
    """SIGTERM every live writer process of ``home`` and wait (bounded) for each to exit; their pids.

    A writer stops after the record it is writing; what it did not write stays in the spool."""
    pids = [pid for lock in sorted(Path(home).glob("writer-*.lock"))
            if (pid := writer_pid(WriterPaths(Path(home), lock.stem.removeprefix("writer-"))))]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for lock in sorted(Path(home).glob("writer-*.lock")):
        while not lock_is_free(lock) and time.monotonic() < deadline:
            time.sleep(0.02)
    return pids
