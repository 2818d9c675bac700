"""Off the critical path, never losing a record: spool first, then a background thread writes to MLflow.

``submit`` appends to the spool (durable) and returns a :class:`Ticket` at once. The writer thread
replays what earlier processes left in the spool, then writes new records; a record whose write
fails stays in the spool and is retried with back-off. ``flush`` waits (bounded) for the queue.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from llmops_lab.tracking import spool as spool_mod

log = logging.getLogger("llmops_lab.tracking")
RETRY_BASE_S = 1.0
RETRY_CAP_S = 30.0
REPEAT_REPORT_S = 600.0  # a long outage still says, every 10 minutes, how often its error repeated


class Ticket:
    """The tracking state of one record: ``pending`` -> ``logged`` (or ``queued`` while MLflow is down)."""

    def __init__(self, record_id: str):
        self.record_id = record_id
        self.status = "pending"
        self.run_id: str | None = None
        self.prompt_uri: str | None = None
        self.error: str | None = None
        self._settled = threading.Event()
        self._callbacks: list[Callable[[Ticket], None]] = []

    def wait(self, timeout: float = 30.0) -> str | None:
        """The run id once logged; None if still pending after ``timeout`` s or queued."""
        self._settled.wait(timeout)
        return self.run_id

    def on_change(self, callback: Callable[["Ticket"], None]) -> None:
        """Call ``callback(ticket)`` on each status change (from the writer thread)."""
        self._callbacks.append(callback)
        if self._settled.is_set():
            callback(self)

    def _set(self, status: str, run_id: str | None = None, prompt_uri: str | None = None,
             error: str | None = None) -> None:
        self.status, self.error = status, error
        if run_id:
            self.run_id, self.prompt_uri = run_id, prompt_uri
        self._settled.set()
        for callback in list(self._callbacks):
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - a display update must never stop the writer
                log.debug("ticket callback failed", exc_info=True)


class Tracker:
    """One per process. ``sink_factory`` builds the MLflow writer inside the thread (heavy import there)."""

    def __init__(self, spool_dir: Path, sink_factory: Callable[[], Any]):
        self.spool = spool_mod.Spool(spool_dir)
        self._sink_factory = sink_factory
        self._queue: queue.Queue = queue.Queue()
        self._tickets: dict[str, Ticket] = {}
        self._retry: list[dict[str, Any]] = []
        self._busy = 0  # records taken from the queue and not yet settled
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._replayed_once = threading.Event()  # flush() also waits for the start-up replay
        self.written = 0
        self.replayed = 0
        self.failures = 0
        self.last_error: str | None = None
        self.undecryptable: dict[Path, str] = {}  # spool files kept: encrypted with a key this process lacks
        # One log line per distinct error; repeats are counted, not logged, and reported in one line
        # ("... (12 more like this)") when writes work again, at close, or every REPEAT_REPORT_S.
        self._repeats: dict[str, list[float]] = {}  # error -> [count not yet reported, time last reported]

    # -- producer side (the call's critical path) ---------------------------------------------------
    def submit(self, record: dict[str, Any]) -> Ticket:
        self.spool.append(record)
        ticket = Ticket(record["id"])
        with self._cond:
            self._tickets[record["id"]] = ticket
            self._busy += 1
        self._queue.put(record)
        self.start()
        return ticket

    def start(self) -> None:
        if self._thread is None:
            with self._cond:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="llmops-tracking", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every submitted record is written (or ``timeout``); returns how many still wait."""
        from llmops_lab.tracking.store_errors import is_refusal

        self.start()
        self._wake.set()
        deadline = time.monotonic() + timeout
        self._replayed_once.wait(timeout)
        woken = time.monotonic()
        with self._cond:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
                # Retry at most once a second while waiting, and a write the server refused (403/401: a
                # person has to grant or fix something) only on the writer's own back-off schedule.
                if time.monotonic() - woken >= RETRY_BASE_S and not is_refusal(self.last_error):
                    self._wake.set()
                    woken = time.monotonic()
            return self._busy

    def close(self, timeout: float = 3.0) -> int:
        """Flush for at most ``timeout`` s, stop the thread; what is left stays in the spool."""
        left = self.flush(timeout) if self._thread is not None else 0
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._log_repeats()  # how often each error repeated since its line (the writer has stopped)
        self.spool.close()
        return left

    # -- writer thread --------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            sink = self._sink_factory()
            self._replay(sink)
        except Exception as err:  # noqa: BLE001 - the store may be down; records wait in the spool
            sink = None
            self._note_failure(err)
        finally:
            self._replayed_once.set()
        delay = RETRY_BASE_S
        next_retry = time.monotonic() + delay
        while not self._stop.is_set():
            try:
                record = self._queue.get(timeout=0.05)
            except queue.Empty:
                record = None
            if record is not None:
                if sink is None:
                    self._retry.append(record)
                    self._settle(record, None)
                else:
                    self._write(sink, record, replay=False)
            if (self._retry or sink is None) and (time.monotonic() >= next_retry or self._wake.is_set()):
                self._wake.clear()
                try:
                    if sink is None:
                        fresh = self._sink_factory()
                        self._replay(fresh)
                        sink = fresh
                    pending, self._retry = self._retry, []
                    for i, rec in enumerate(pending):
                        if not self._write(sink, rec, replay=True):  # the store is still down: try the
                            self._retry.extend(pending[i + 1:])      # rest next round, not one by one now
                            break
                except Exception as err:  # noqa: BLE001
                    self._note_failure(err)
                delay = RETRY_BASE_S if not self._retry else min(delay * 2, RETRY_CAP_S)
                next_retry = time.monotonic() + delay

    def _write(self, sink: Any, record: dict[str, Any], replay: bool) -> bool:
        try:
            run_id, prompt_uri = sink.write(record, replay=replay)
        except Exception as err:  # noqa: BLE001 - keep the record; it is retried and stays spooled
            self._note_failure(err)
            self._retry.append(record)
            self._settle(record, None)
            return False
        self.spool.ack([record["id"]])
        self.written += 1
        if self._repeats:  # writes work again: say how often each error repeated, then forget them
            self._log_repeats()
            self._repeats.clear()
        self._settle(record, (run_id, prompt_uri))
        return True

    def _settle(self, record: dict[str, Any], result: tuple[str, str | None] | None) -> None:
        # The ticket first, then the count flush() waits on: a flush that returns 0 has every run id set.
        with self._cond:
            ticket = self._tickets.get(record["id"])
        if ticket is not None:
            if result is None:
                ticket._set("queued", error=self.last_error)
            else:
                ticket._set("logged", *result)
        with self._cond:
            if result is not None:
                self._tickets.pop(record["id"], None)
                self._busy -= 1
            self._cond.notify_all()

    def _replay(self, sink: Any) -> None:
        """Write what dead processes left in the spool; skip what MLflow already has (never twice)."""
        from llmops_lab.exceptions import DataKeyError

        for orphan in spool_mod.orphans(self.spool.folder, exclude=self.spool.path):
            try:
                try:
                    pending = orphan.pending()
                except DataKeyError as err:  # encrypted with a key this process lacks: kept, the others go on
                    if orphan.path not in self.undecryptable:  # one line per file, not per retry
                        log.warning("%s", err)
                    self.undecryptable[orphan.path] = str(err)
                    continue
                self.undecryptable.pop(orphan.path, None)
                for record in pending:
                    sink.write(record, replay=True)
                    orphan.ack([record["id"]])
                    self.replayed += 1
            finally:
                orphan.release()

    def _note_failure(self, err: Exception) -> None:
        from llmops_lab.tracking.store_errors import describe

        self.failures += 1
        self.last_error = describe(err)  # one line, permission errors spelled out, secrets masked
        seen = self._repeats.get(self.last_error)
        if seen is None:
            self._repeats[self.last_error] = [0, time.monotonic()]
            log.warning("MLflow write failed, records kept in the spool: %s", self.last_error)
            return
        seen[0] += 1
        if time.monotonic() - seen[1] >= REPEAT_REPORT_S:
            self._log_repeats()

    @property
    def repeats(self) -> int:
        """Failures not logged because an identical line was logged already (not yet reported)."""
        return int(sum(count for count, _ in self._repeats.values()))

    def _log_repeats(self) -> None:
        for error, seen in list(self._repeats.items()):
            if seen[0]:
                log.warning("MLflow write failed, records kept in the spool: %s (%d more like this)", error,
                            int(seen[0]))
                seen[0], seen[1] = 0, time.monotonic()
