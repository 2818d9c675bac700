"""Served requests as rows: one MLflow run per window of requests, not one run per request.

A window gathers the requests of one prompt text, model, parameters and key, for ``window_s`` seconds (10) or
``max_rows`` requests (1,000), whichever comes first. Each request's row goes to the spool as it is answered
(a ``batch_rows`` record of one row: durable before the response is sent); closing the window spools the
``batch`` record that makes the rows one run, as a notebook batch's are, with ``llmops.kind=serve``: a
results table, latency percentiles, tokens, cost, error rate, and a trace for the first ``trace_sample``
requests. Windows are closed by a timer thread and, at shutdown, all at once.

The rows are the call's record as the call core built it: already redacted.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from llmops_lab.tracking import tags as T

if TYPE_CHECKING:
    from llmops_lab.config import Settings
    from llmops_lab.core.plan import CallPlan

WINDOW_S = 10.0
MAX_ROWS = 1000
TRACE_SAMPLE = 20


@dataclass
class _Window:
    batch_id: str
    plan: "CallPlan"
    user: str
    opened: float  # monotonic
    started_ns: int
    ended_ns: int = 0
    chunks: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    trace_rows: list[dict[str, Any]] = field(default_factory=list)


class Windows:
    def __init__(self, window_s: float = WINDOW_S, max_rows: int = MAX_ROWS, trace_sample: int = TRACE_SAMPLE):
        self.window_s, self.max_rows, self.trace_sample = window_s, max_rows, trace_sample
        self._open: dict[tuple, _Window] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.closed = 0

    def recorder(self, plan: "CallPlan") -> Callable[[dict[str, Any], "Settings"], None]:
        """The ``record_to`` of one served call (core/call.complete): its record becomes a row of a window."""
        return lambda record, settings: self.add(plan, record, settings)

    def add(self, plan: "CallPlan", record: dict[str, Any], settings: "Settings") -> None:
        from llmops_lab.core import records
        from llmops_lab.tracking import submit

        key = (record["prompt"]["name"], record["prompt"]["sha256"], record["model"],
               json.dumps(record["params"], sort_keys=True, default=str), record["user"], record["experiment"])
        row = _row(record)
        rows_record = records.batch_rows("", 0, [row], settings)  # redacted once more, outside the lock
        full = None
        with self._lock:
            window = self._open.get(key)
            if window is None:
                window = self._open[key] = _Window(records.new_id(), plan, record["user"], time.monotonic(),
                                                   record["start_ns"], variables=list(record["variables"]))
            chunk = window.chunks
            window.chunks += 1
            _count(window, record)
            if len(window.trace_rows) < self.trace_sample:
                window.trace_rows.append(records.trace_row(
                    chunk, record["messages"], record["variables"], output=record.get("output"),
                    error=record.get("error"), prompt_tokens=row["prompt_tokens"],
                    completion_tokens=row["completion_tokens"], start_ns=record["start_ns"],
                    end_ns=record["end_ns"], cached=False))
            rows_record["batch"], rows_record["chunk"] = window.batch_id, chunk
            submit(rows_record, settings)  # in the lock: a window's batch record always follows all its rows
            if window.chunks >= self.max_rows:
                full = self._open.pop(key)
        if full is not None:
            self._close(full, settings)

    def start(self) -> None:
        """The timer that closes windows ``window_s`` after they opened."""
        if self._timer is None:
            self._timer = threading.Thread(target=self._tick, name="llmops-serve-windows", daemon=True)
            self._timer.start()

    def close_all(self) -> int:
        """Close every open window (at shutdown); returns how many."""
        self._stop.set()
        with self._lock:
            due, self._open = list(self._open.values()), {}
        for window in due:
            self._close(window)
        return len(due)

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.window_s / 4)):
            now = time.monotonic()
            with self._lock:
                due = [k for k, w in self._open.items() if now - w.opened >= self.window_s]
                windows = [self._open.pop(k) for k in due]
            for window in windows:
                self._close(window)

    def _close(self, window: _Window, settings: "Settings | None" = None) -> None:
        from llmops_lab.config import get_settings
        from llmops_lab.core import records
        from llmops_lab.evaluation.batch import percentile  # the batch's own latency figures
        from llmops_lab.tracking import submit
        from llmops_lab.tracking.context import acting_as

        settings = settings or get_settings()
        wall_s = max((window.ended_ns - window.started_ns) / 1e9, 1e-3)
        summary = {"rows": window.chunks, "errors": window.errors, "cache_hits": 0, "requests": window.chunks,
                   "shared": 0, "limit_cuts": 0, "retries": window.retries,
                   "latency_p50_ms": percentile(window.latencies, 0.5),
                   "latency_p95_ms": percentile(window.latencies, 0.95),
                   "rows_per_s": window.chunks / wall_s, "wall_s": wall_s,
                   "prompt_tokens": window.prompt_tokens, "completion_tokens": window.completion_tokens,
                   "cost_usd": sum(window.costs) if window.costs else None, "scores": {}}
        dataset = {"name": f"served {window.plan.name}", "digest": window.batch_id[:16], "source": "llmops-lab serve",
                   "dtypes": {v: "str" for v in window.variables}, "rows": window.chunks, "columns": window.variables}
        with acting_as(window.user):
            record = records.batch(window.plan, settings, batch_id=window.batch_id, chunks=window.chunks,
                                   batch_params={"serve_window_s": self.window_s, "trace_sample": self.trace_sample},
                                   dataset=dataset, summary=summary, trace_rows=window.trace_rows,
                                   start_ns=window.started_ns, end_ns=window.ended_ns)
        record["run_kind"] = T.SERVE  # a batch-shaped run whose llmops.kind says where its rows came from
        submit(record, settings)
        self.closed += 1


def _count(window: _Window, record: dict[str, Any]) -> None:
    usage = record.get("usage") or {}
    window.ended_ns = max(window.ended_ns, record["end_ns"])
    window.prompt_tokens += int(usage.get("prompt_tokens") or 0)
    window.completion_tokens += int(usage.get("completion_tokens") or 0)
    window.retries += int(record.get("retries") or 0)
    if record.get("error"):
        window.errors += 1
    else:
        window.latencies.append(float(record.get("latency_ms") or 0.0))
    if record.get("cost_usd") is not None:
        window.costs.append(float(record["cost_usd"]))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A results-table row of the call's (redacted) record: its variables, then what a batch row holds."""
    usage = record.get("usage") or {}
    return {**record["variables"], "output": record.get("output"), "latency_ms": record.get("latency_ms"),
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "total_tokens": int(usage.get("total_tokens") or 0), "cost_usd": record.get("cost_usd"),
            "cached": False, "retries": int(record.get("retries") or 0), "error": record.get("error"),
            "ttft_ms": record.get("ttft_ms")}

