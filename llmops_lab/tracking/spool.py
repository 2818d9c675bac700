"""Append-only JSONL spool: a record is durable here before the call returns, and leaves only after
MLflow accepted it.

Each process appends to its own file and holds an ``flock`` on it for its lifetime, so a file whose
lock can be taken belongs to a process that is gone (exit, crash or SIGKILL) and is safe to replay.
Acknowledged record ids go to a sidecar ``.acked`` file; a fully acknowledged file is deleted. An ack line
is ``id`` or, written by the writer process (tracking/writer_process.py), ``id<TAB>run_id<TAB>prompt_uri``:
the kernel reads its run ids there. With the process writer the file name carries the writer's identity
(``spool-<pid>-<rand>-w<id>.jsonl``), and only the writer appends to ``.acked``, live files included.

With ``LLMOPS_DATA_KEY`` set, each line is encrypted (:mod:`llmops_lab.trust.at_rest`); lines written before
are read as they are. A file that cannot be decrypted (no key, another key) raises a one-line DataKeyError
on reading and is never deleted: its records wait for the key.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from llmops_lab.exceptions import DataKeyError
from llmops_lab.trust import at_rest

SUFFIX = ".jsonl"
ACKED = ".acked"
SPOOL_CONTEXT = b"llmops-spool"  # authenticated with each encrypted line: a line of another file kind fails


def _read_lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle
    except FileNotFoundError:
        return


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a spool file; a torn last line (crash mid-write) is skipped. An encrypted line that does not
    decrypt raises DataKeyError (the file is kept for when the key is back)."""
    records = []
    for line in _read_lines(path):
        if line.endswith("\n"):
            try:
                records.append(json.loads(at_rest.open_text(line, SPOOL_CONTEXT, f"spool file {path}")))
            except json.JSONDecodeError:
                continue
    return records


def ack_line(record_id: str, run_id: str | None = None, prompt_uri: str | None = None) -> str:
    return f"{record_id}\t{run_id or ''}\t{prompt_uri or ''}\n" if run_id is not None else f"{record_id}\n"


def parse_ack(line: str) -> tuple[str, str | None, str | None]:
    """(record id, run id, prompt uri) of one complete ack line; the ids-only form gives (id, None, None)."""
    parts = line.rstrip("\n").split("\t")
    return parts[0].strip(), (parts[1] or None) if len(parts) > 1 else None, \
        (parts[2] or None) if len(parts) > 2 else None


def read_acked(path: Path) -> set[str]:
    return {parse_ack(line)[0] for line in _read_lines(path.with_name(path.name + ACKED)) if line.endswith("\n")}


def _lock_new_file(handle) -> None:
    """Lock our new file; a process testing whether it is dead holds the lock for microseconds, so retry."""
    import time

    for _ in range(200):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.005)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Spool:
    """This process's spool file in ``folder``; created on the first append."""

    def __init__(self, folder: Path, writer_id: str | None = None):
        self.folder = Path(folder)
        tag = f"-w{writer_id}" if writer_id else ""  # which writer process owns it (None: the thread writer)
        self.path = self.folder / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}{tag}{SUFFIX}"
        self._handle = None
        self._acks = None
        self._lock = threading.Lock()
        self.appended = 0
        self.acked = 0

    def append(self, record: dict[str, Any]) -> None:
        line = at_rest.seal(json.dumps(record, ensure_ascii=False, default=str), SPOOL_CONTEXT) + "\n"
        with self._lock:
            if self._handle is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")
                _lock_new_file(self._handle)
            # One write + flush: the line reaches the OS before the call returns (survives SIGKILL).
            self._handle.write(line)
            self._handle.flush()
            self.appended += 1

    def ack(self, record_ids: list[str]) -> None:
        if not record_ids:
            return
        with self._lock:
            if self._acks is None:
                self._acks = open(self.path.with_name(self.path.name + ACKED), "a", encoding="utf-8")
            self._acks.write("".join(f"{rid}\n" for rid in record_ids))
            self._acks.flush()
            self.acked += len(record_ids)

    def close(self) -> None:
        """Close; delete the file if every record reached MLflow (else it waits for replay)."""
        with self._lock:
            done = self.appended == self.acked
            for handle in (self._acks, self._handle):
                if handle is not None:
                    handle.close()
            self._handle = self._acks = None
            if done and self.appended:
                for path in (self.path, self.path.with_name(self.path.name + ACKED)):
                    path.unlink(missing_ok=True)


class OrphanFile:
    """A spool file left by a finished process, locked by us while we replay it."""

    def __init__(self, path: Path, handle):
        self.path = path
        self._handle = handle
        self._acks = None

    def pending(self) -> list[dict[str, Any]]:
        acked = read_acked(self.path)
        return [r for r in read_records(self.path) if r.get("id") not in acked]

    def ack(self, record_ids: list[str]) -> None:
        if self._acks is None:
            self._acks = open(self.path.with_name(self.path.name + ACKED), "a", encoding="utf-8")
        self._acks.write("".join(f"{rid}\n" for rid in record_ids))
        self._acks.flush()

    def release(self) -> None:
        """Delete the file when nothing is pending, then unlock (a file that does not decrypt is kept)."""
        if self._acks is not None:
            self._acks.close()
        try:
            done = not self.pending()
        except DataKeyError:
            done = False
        if done:
            for path in (self.path, self.path.with_name(self.path.name + ACKED)):
                path.unlink(missing_ok=True)
        self._handle.close()


def orphans(folder: Path, exclude: Path | None = None) -> Iterator[OrphanFile]:
    """Spool files in ``folder`` whose writer is gone, each locked for the caller until released."""
    if not Path(folder).is_dir():
        return
    for path in sorted(Path(folder).glob(f"spool-*{SUFFIX}")):
        if exclude is not None and path == exclude:
            continue
        try:
            handle = open(path, "a", encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its process is alive
            handle.close()
            continue
        if not path.exists():  # replayed and deleted by another process meanwhile
            handle.close()
            continue
        yield OrphanFile(path, handle)


def has_orphans(folder: Path) -> bool:
    """Cheap check at load time: are there spool files at all (maybe left by an earlier kernel)?"""
    return Path(folder).is_dir() and any(Path(folder).glob(f"spool-*{SUFFIX}"))
