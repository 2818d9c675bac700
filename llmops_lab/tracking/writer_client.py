"""The kernel side of the writer process (setting ``writer = "process"``): spool, start the writer, read acks.

``submit`` appends the record to this process's spool file (durable at return, as with the thread writer),
then makes sure the project's writer process runs (:mod:`llmops_lab.tracking.writer_process`; started
detached on demand, restarted if it died). Tickets settle from the writer's ack lines (``id, run id, prompt
uri`` in the spool file's ``.acked``) and its status file (an error: "queued"). A poller thread runs only
while this process has records not yet acknowledged, so a kernel never imports MLflow for tracking and an
idle kernel does no work. ``close`` leaves what is unacknowledged to the writer: a script exits at once.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from llmops_lab.config import Settings
from llmops_lab.exceptions import DataKeyError
from llmops_lab.tracking import spool as spool_mod
from llmops_lab.tracking.tracker import RETRY_BASE_S, Ticket
from llmops_lab.tracking.writer_ident import ID_ENV, WriterPaths, identity, is_legacy, lock_is_free, read_status

log = logging.getLogger("llmops_lab.tracking")
POLL_S = 0.02  # how often a waiting kernel reads its .acked (a stat when nothing changed)
PROBE_S = 1.0  # how often a waiting kernel checks that the writer still runs
SPAWN_GAP_S = 2.0  # at most one spawn per client in this time (a new writer takes ~0.2 s to lock)


def spawn(settings: Settings, writer_id: str) -> subprocess.Popen:
    """Start the writer detached (own session, stdio to its log). Secrets travel in its environment only."""
    paths = WriterPaths(settings.home, writer_id)
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({ID_ENV: writer_id, "LLMOPS_HOME": str(settings.home),
                "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri(),
                "LLMOPS_ALLOW_INSECURE_TRANSPORT": str(settings.allow_insecure_transport).lower(),
                "LLMOPS_WRITER_IDLE_S": str(settings.writer_idle_s)})
    with open(paths.log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llmops_lab.tracking.writer_process"],
                                cwd=str(settings.project_root), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=out, start_new_session=True, close_fds=True)
    # Reap it when it exits (no zombie in a long-lived kernel); a script exiting first leaves it to init.
    threading.Thread(target=proc.wait, name="llmops-writer-reaper", daemon=True).start()
    return proc


class _Channel:
    """This process's records for one writer: its spool file and how far its acks were read."""

    def __init__(self, settings: Settings, key: tuple):
        self.key = key
        self.writer_id = identity(settings)
        self.paths = WriterPaths(settings.home, self.writer_id)
        self.spool = spool_mod.Spool(self.paths.spool, self.writer_id)
        self.ack_offset = 0
        self.acked = 0
        self.status_mtime: int | None = None
        self.failures_seen: int | None = None
        self.probed = 0.0
        self.spawned = -SPAWN_GAP_S


def _channel_key(settings: Settings) -> tuple:
    """What a writer's identity is made of, cheap to compare on every submit (configure() may change it)."""
    from llmops_lab.tracking.writer_ident import SECRET_ENV

    return (str(settings.home), settings.resolved_tracking_uri(), settings.allow_insecure_transport,
            tuple(os.environ.get(name, "") for name in SECRET_ENV))


class WriterClient:
    """One per process, in place of :class:`~llmops_lab.tracking.tracker.Tracker` (same interface).

    Records go to the writer of the settings at submit time: after ``configure(tracking_uri=...)`` (or other
    credentials) new records get a new spool file and writer; the earlier ones stay with theirs."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._channel = _Channel(settings, _channel_key(settings))
        self._channels = [self._channel]
        self._tickets: dict[str, tuple[Ticket, _Channel]] = {}
        self._cond = threading.Condition()
        self._io = threading.Lock()  # one reader of .acked and the status at a time
        self._thread: threading.Thread | None = None
        self._errors_logged: set[str] = set()
        self._closed = False
        self.written = 0  # records of this process the writer acknowledged
        self.replayed = 0  # records of exited processes acknowledged while this process flushed
        self.failures = 0
        self.last_error: str | None = None
        self.repeats = 0
        self.undecryptable: dict[Path, str] = {}

    @property
    def spool(self) -> spool_mod.Spool:
        return self._channel.spool

    @property
    def paths(self) -> WriterPaths:
        return self._channel.paths

    @property
    def writer_id(self) -> str:
        return self._channel.writer_id

    # -- producer side ------------------------------------------------------------------------------------
    def submit(self, record: dict[str, Any]) -> Ticket:
        key = _channel_key(self._settings)
        if key != self._channel.key:
            with self._cond:
                self._channel = _Channel(self._settings, key)
                self._channels.append(self._channel)
        channel = self._channel
        channel.spool.append(record)
        ticket = Ticket(record["id"])
        with self._cond:
            self._tickets[record["id"]] = (ticket, channel)
        self.ensure_writer(channel)
        self.start()
        return ticket

    def ensure_writer(self, channel: _Channel | None = None, force: bool = False) -> bool:
        """Start the writer process if none holds its lock; True when one was started."""
        channel = channel or self._channel
        now = time.monotonic()
        if not force and now - channel.probed < PROBE_S:
            return False  # checked a moment ago
        channel.probed = now
        if not lock_is_free(channel.paths.lock) or now - channel.spawned < SPAWN_GAP_S:
            return False
        channel.spawned = now
        spawn(self._settings, channel.writer_id)
        return True

    def start(self) -> None:
        """Run the poller while records wait (it stops by itself when none do)."""
        with self._cond:
            if self._thread is None and self._tickets:
                self._thread = threading.Thread(target=self._poll, name="llmops-tracking", daemon=True)
                self._thread.start()
        if self._thread is None and spool_mod.has_orphans(self.paths.spool):
            self.ensure_writer(force=True)  # an earlier process left records: the writer replays them

    def _waiting_channels(self) -> list[_Channel]:
        with self._cond:
            ids = {id(channel) for _, channel in self._tickets.values()}
            return [channel for channel in self._channels if id(channel) in ids]

    def _poll(self) -> None:
        while True:
            self._read()
            with self._cond:
                if not self._tickets or self._closed:
                    self._thread = None
                    return
            for channel in self._waiting_channels():
                if time.monotonic() - channel.probed >= PROBE_S:
                    self.ensure_writer(channel)
            time.sleep(POLL_S)

    # -- what the writer said ------------------------------------------------------------------------------
    def _read(self) -> None:
        with self._io:
            for channel in self._waiting_channels():
                self._read_acks(channel)
                self._read_status(channel)

    def _read_acks(self, channel: _Channel) -> None:
        path = channel.spool.path.with_name(channel.spool.path.name + spool_mod.ACKED)
        try:
            with open(path, "rb") as handle:
                handle.seek(channel.ack_offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        channel.ack_offset += end
        for raw in data[:end].splitlines():
            rid, run_id, prompt_uri = spool_mod.parse_ack(raw.decode("utf-8", errors="replace") + "\n")
            with self._cond:
                entry = self._tickets.pop(rid, None)
            if entry is None:
                continue
            channel.acked += 1
            self.written += 1
            entry[0]._set("logged", run_id, prompt_uri)  # the ticket first: a flush that returns 0 has its run id
            with self._cond:
                self._cond.notify_all()

    def _read_status(self, channel: _Channel) -> None:
        try:
            mtime = channel.paths.status.stat().st_mtime_ns
        except OSError:
            return
        if mtime == channel.status_mtime:
            return
        channel.status_mtime = mtime
        status = read_status(channel.paths)
        failures = int(status.get("failures") or 0)
        self.undecryptable = {Path(p): reason for p, reason in (status.get("undecryptable") or {}).items()}
        first = channel.failures_seen is None
        delta = 0 if first else max(0, failures - channel.failures_seen)
        channel.failures_seen = failures
        if not (status.get("failing") and status.get("last_error")):
            return
        delta = max(delta, 1 if first else 0)
        if delta:
            self.failures += delta
            self.last_error = status["last_error"]
            if self.last_error in self._errors_logged:  # one line per distinct error in this kernel too
                self.repeats += delta
            else:
                self._errors_logged.add(self.last_error)
                log.warning("MLflow write failed, records kept in the spool: %s", self.last_error)
        with self._cond:
            waiting = [t for t, c in self._tickets.values()
                       if c is channel and (t.status, t.error) != ("queued", self.last_error)]
        for ticket in waiting:
            ticket._set("queued", error=self.last_error)

    # -- flush and close -------------------------------------------------------------------------------------
    def _orphan_records(self) -> dict[Path, set[str]]:
        """Unacknowledged record ids of exited processes' files this writer serves (a flush waits for them)."""
        found: dict[Path, set[str]] = {}
        for path in sorted(self.paths.spool.glob(f"spool-*{spool_mod.SUFFIX}")) if self.paths.spool.is_dir() else []:
            if path == self.spool.path or not (self.paths.owns(path) or is_legacy(path)) or not lock_is_free(path):
                continue
            try:
                ids = {r["id"] for r in spool_mod.read_records(path) if r.get("id")} - spool_mod.read_acked(path)
            except DataKeyError as err:
                self.undecryptable[path] = str(err)
                continue
            if ids:
                found[path] = ids
        return found

    def _orphans_left(self, orphans: dict[Path, set[str]]) -> int:
        left = 0
        for path, ids in orphans.items():
            done = ids & spool_mod.read_acked(path) if path.exists() else set(ids)
            self.replayed += len(done)
            ids -= done
            left += len(ids)
        return left

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until the writer acknowledged every record of this process and of exited ones (or ``timeout``);
        returns how many still wait. Starts the writer if none runs and asks it to retry at once."""
        from llmops_lab.tracking.store_errors import is_refusal

        deadline = time.monotonic() + timeout
        orphans = self._orphan_records()
        if not self._tickets and not orphans:
            return 0
        channels = {id(c): c for c in [*self._waiting_channels(), self._channel]}.values()
        for channel in channels:
            self.ensure_writer(channel, force=True)
            self._wake(channel)
        woken = time.monotonic()
        while True:
            self._read()
            left = len(self._tickets) + self._orphans_left(orphans)
            if not left or time.monotonic() >= deadline:
                return left
            if time.monotonic() - woken >= RETRY_BASE_S:
                for channel in channels:
                    self.ensure_writer(channel, force=True)
                    if not is_refusal(self.last_error):  # a refusal waits for the writer's own back-off
                        self._wake(channel)
                woken = time.monotonic()
            time.sleep(POLL_S)

    @staticmethod
    def _wake(channel: _Channel) -> None:
        try:
            channel.paths.wake.touch()
            os.utime(channel.paths.wake)
        except OSError:
            pass

    def close(self, timeout: float = 0.0) -> int:
        """Leave unacknowledged records to the writer (started if it is not running); how many those are.
        A fully acknowledged spool file is deleted; otherwise its lock is released and the writer deletes it."""
        self._read()
        left = len(self._tickets)
        for channel in self._waiting_channels():
            self.ensure_writer(channel, force=True)
        self._closed = True
        for channel in self._channels:
            channel.spool.acked = channel.acked  # Spool.close deletes the file only when all were acknowledged
            channel.spool.close()
        return left
