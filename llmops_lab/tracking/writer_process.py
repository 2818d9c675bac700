"""The project's writer process: tails the spool files of its kernels and writes each record to MLflow once.

``python -m llmops_lab.tracking.writer_process`` (spawned by :mod:`llmops_lab.tracking.writer_client`, with
``LLMOPS_WRITER_ID``, ``LLMOPS_HOME`` and ``MLFLOW_TRACKING_URI`` and the credentials in its environment). One
per identity (:mod:`llmops_lab.tracking.writer_ident`): the flock on ``writer-<id>.lock`` makes it a singleton.

- Live spool files are read without their lock (a reader needs none); only complete lines count.
- Each record is written with :class:`MlflowSink`, then acknowledged in the file's ``.acked`` sidecar as
  ``id<TAB>run_id<TAB>prompt_uri``: the kernel settles its tickets from there. Only this process appends to
  ``.acked`` of the files it serves.
- What was already in a file when this process first read it is written with ``replay=True`` (an earlier
  writer may have written it and died before the ack: never twice), and so is every retry.
- A file whose lock can be taken belongs to a dead process: fully acknowledged, it is deleted here. Spool files
  of thread writers (no writer id in the name) are replayed once their process is gone, as the thread did.
- A failed write keeps the record; retries back off from 1 s to 30 s, at once when a client touches the wake
  file. Failures go to ``writer-<id>.json`` (clients show them) and, one line per distinct error, to the log.
- It exits after ``writer_idle_s`` seconds with nothing to write, when its home is gone, or on SIGTERM.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmops_lab.exceptions import DataKeyError
from llmops_lab.tracking import spool as spool_mod
from llmops_lab.tracking.writer_ident import ID_ENV, WriterPaths, is_legacy, lock_is_free
from llmops_lab.trust import at_rest

log = logging.getLogger("llmops_lab.tracking.writer_process")
POLL_S = 0.05  # how often the spool folder is looked at (a stat per file)
RETRY_BASE_S, RETRY_CAP_S = 1.0, 30.0
LOCK_CHECK_S = 1.0  # how often a file is tested for a dead owner


class FileState:
    """What this process knows of one spool file: bytes read, acknowledged ids, records still to write."""

    def __init__(self, path: Path):
        self.path = path
        self.ino: int | None = None
        self.offset = 0
        self.acked: set[str] = set()
        self.pending: list[tuple[dict[str, Any], bool]] = []  # (record, replay)
        self.first_read = True
        self.undecryptable: str | None = None
        self.checked = 0.0  # last lock test (monotonic)

    def refresh(self) -> bool:
        """Read what was appended since the last call; False when the file is gone."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        if st.st_ino != self.ino or st.st_size < self.offset:  # new, or rewritten by spool_purge: start over
            self.ino, self.offset, self.first_read, self.pending = st.st_ino, 0, True, []
            self.acked = spool_mod.read_acked(self.path)
            self.undecryptable = None
        if st.st_size <= self.offset or self.undecryptable:
            return True
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(st.st_size - self.offset)
        end = data.rfind(b"\n") + 1  # a torn (still being written) last line waits for its end
        queued = {rec["id"] for rec, _ in self.pending}
        for raw in data[:end].splitlines():
            line = raw.decode("utf-8", errors="replace")
            try:
                record = json.loads(at_rest.open_text(line, spool_mod.SPOOL_CONTEXT, f"spool file {self.path}"))
            except json.JSONDecodeError:
                continue
            except DataKeyError as err:  # sealed with a key this process lacks: kept for when it is back
                self.undecryptable = str(err)
                log.warning("%s", err)
                return True
            rid = record.get("id")
            if rid and rid not in self.acked and rid not in queued:
                self.pending.append((record, self.first_read))
                queued.add(rid)
        self.offset += end
        self.first_read = False
        return True

    def replaced(self) -> bool:
        try:
            return self.path.stat().st_ino != self.ino
        except FileNotFoundError:
            return True

    def ack(self, record_id: str, run_id: str | None, prompt_uri: str | None) -> None:
        # Opened per ack: spool_purge may have replaced the sidecar of a dead file meanwhile.
        with open(self.path.with_name(self.path.name + spool_mod.ACKED), "a", encoding="utf-8") as handle:
            handle.write(spool_mod.ack_line(record_id, run_id or "", prompt_uri))
        self.acked.add(record_id)


class Writer:
    def __init__(self, paths: WriterPaths, idle_s: float):
        self.paths = paths
        self.idle_s = idle_s
        self.files: dict[Path, FileState] = {}
        self.stop = threading.Event()
        self.sink: Any = None
        self.delay = RETRY_BASE_S
        self.next_retry = 0.0
        self.wake_mtime = self._wake_mtime()
        self.status = {"pid": os.getpid(), "written": 0, "replayed": 0, "failures": 0, "last_error": None, "failing": False,
                       "undecryptable": {}}
        self._status_dirty = True
        self._errors: dict[str, int] = {}  # error -> repeats since its line
        self._legacy_checked: dict[Path, float] = {}  # a live thread writer's file: tested once a second

    def _wake_mtime(self) -> float:
        try:
            return self.paths.wake.stat().st_mtime_ns
        except OSError:
            return 0

    # -- reading the spool ----------------------------------------------------------------------------
    def scan(self) -> int:
        """Tail every file this process serves; how many records wait."""
        now = time.monotonic()
        seen = set()
        for path in sorted(self.paths.spool.glob(f"spool-*{spool_mod.SUFFIX}")):
            legacy = is_legacy(path)
            if not (self.paths.owns(path) or legacy):
                continue
            state = self.files.get(path)
            if state is None:
                if legacy and (now - self._legacy_checked.get(path, -LOCK_CHECK_S) < LOCK_CHECK_S):
                    continue
                if legacy and not lock_is_free(path):  # a live thread writer's file is its own
                    self._legacy_checked[path] = now
                    continue
                state = self.files[path] = FileState(path)
            seen.add(path)
            if not state.refresh():
                seen.discard(path)
        for gone in set(self.files) - seen:
            del self.files[gone]
        undecryptable = {str(s.path): s.undecryptable for s in self.files.values() if s.undecryptable}
        if undecryptable != self.status["undecryptable"]:
            self.status["undecryptable"] = undecryptable
            self._status_dirty = True
        self._clean(now)
        return sum(len(s.pending) for s in self.files.values())

    def _clean(self, now: float) -> None:
        """Delete fully acknowledged files of dead processes (under their lock, so never a live one)."""
        for state in list(self.files.values()):
            if state.pending or state.undecryptable or now - state.checked < LOCK_CHECK_S:
                continue
            state.checked = now
            try:
                st = state.path.stat()
            except FileNotFoundError:
                continue
            if st.st_size == 0 and time.time() - st.st_mtime < 60:
                continue  # just created: its process opens, then locks, then writes; never delete it in between
            try:
                handle = open(state.path, "a")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                if state.refresh() and not state.pending and not state.undecryptable:
                    for path in (state.path, state.path.with_name(state.path.name + spool_mod.ACKED)):
                        path.unlink(missing_ok=True)
                    del self.files[state.path]
            finally:
                handle.close()

    # -- writing ----------------------------------------------------------------------------------------
    def drain(self) -> None:
        if time.monotonic() < self.next_retry and self._wake_mtime() == self.wake_mtime:
            return
        self.wake_mtime = self._wake_mtime()
        try:
            if self.sink is None:
                from llmops_lab.config import get_settings
                from llmops_lab.tracking.mlflow_sink import MlflowSink

                self.sink = MlflowSink(get_settings)
            for state in list(self.files.values()):
                while state.pending and not self.stop.is_set():
                    if state.replaced():  # spool_purge rewrote it (an erasure): never write what it dropped
                        break
                    record, replay = state.pending[0]
                    run_id, prompt_uri = self.sink.write(record, replay=replay)
                    state.ack(record["id"], run_id, prompt_uri)
                    state.pending.pop(0)
                    self.status["replayed" if replay else "written"] += 1
                    self.status["failing"] = False
                    self._status_dirty = True
                    if self._errors:
                        self._report_repeats()
                    self.delay = RETRY_BASE_S
                    self.write_status(throttle=True)
        except Exception as err:  # noqa: BLE001 - the store may be down: records wait in the spool, retried
            self._failed(err)
            for state in self.files.values():  # what is retried may have been half written: replay
                state.pending = [(rec, True) for rec, _ in state.pending]

    def _failed(self, err: Exception) -> None:
        from llmops_lab.tracking.store_errors import describe

        message = describe(err)  # one line, secrets masked
        self.status["failures"] += 1
        self.status["last_error"] = message
        self.status["failing"] = True
        self._status_dirty = True
        if message in self._errors:
            self._errors[message] += 1
        else:
            self._errors[message] = 0
            log.warning("MLflow write failed, records kept in the spool: %s", message)
        self.next_retry = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, RETRY_CAP_S)

    def _report_repeats(self) -> None:
        for message, count in self._errors.items():
            if count:
                log.warning("MLflow write failed, records kept in the spool: %s (%d more like this)", message, count)
        self._errors.clear()

    _status_written = 0.0

    def write_status(self, throttle: bool = False) -> None:
        if not self._status_dirty or (throttle and time.monotonic() - self._status_written < 0.2):
            return
        tmp = self.paths.status.with_name(self.paths.status.name + f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.status))
            os.replace(tmp, self.paths.status)
        except OSError:
            return
        self._status_dirty, self._status_written = False, time.monotonic()

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self, lock_handle) -> None:
        idle_since = time.monotonic()
        while not self.stop.is_set():
            if not self.paths.home.is_dir():
                return
            if self.scan():
                self.drain()
                idle_since = time.monotonic()
            self.write_status()
            if time.monotonic() - idle_since >= self.idle_s:
                # Release, then look once more: a client that appended before it saw the lock held is seen
                # here; one that looked after the release starts a new writer itself.
                fcntl.flock(lock_handle, fcntl.LOCK_UN)
                if not self.scan():
                    return
                try:
                    fcntl.flock(lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # a new writer took over
                idle_since = time.monotonic()
            self.stop.wait(POLL_S)


def _acquire(path: Path, wait_s: float = 0.5):
    """The writer lock, or None if another writer holds it (a client's probe holds it for microseconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.01)
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle


def main() -> int:
    from llmops_lab.config import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s writer[%(process)d] %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        os.nice(10)  # background work: on a loaded machine the kernels' calls go first
    except OSError:
        pass
    settings = get_settings()
    paths = WriterPaths(settings.home, os.environ[ID_ENV])
    handle = _acquire(paths.lock)
    if handle is None:
        return 0  # another writer serves this identity
    writer = Writer(paths, settings.writer_idle_s)
    signal.signal(signal.SIGTERM, lambda *_: writer.stop.set())
    log.info("writer started for %s", paths.home)
    try:
        writer.run(handle)
    finally:
        writer._report_repeats()
        writer._status_dirty = True
        writer.write_status()
        handle.close()
        log.info("writer stopped: %d written, %d replayed", writer.status["written"], writer.status["replayed"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
