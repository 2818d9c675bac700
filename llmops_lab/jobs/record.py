"""``llmops_lab.record(name, value)``: a metric from inside a notebook. Light: stdlib only.

Inside a job execution the executor sets ``LLMOPS_JOB_METRICS`` (a JSONL file) in the kernel's
environment; each call appends ``{"name", "value", "ts", "step"}`` there and the executor logs them as
metrics of the job's MLflow run after papermill finishes (the last value per name is the execution's
metric; repeated names become steps). Outside a job the value is kept in this process
(:func:`recorded`) and printed as ``name = value`` so the notebook still shows it.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
import time

from llmops_lab.exceptions import ConfigError

ENV_METRICS = "LLMOPS_JOB_METRICS"
ENV_JOB = "LLMOPS_JOB"
_NAME = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}$")  # what MLflow accepts as a metric name
_lock = threading.Lock()
_recorded: dict[str, float] = {}


def record(name: str, value: float, step: int | None = None) -> None:
    """Record metric ``name`` = ``value`` (a number; bools count as 1/0); ``step`` orders repeated values.

    >>> llmops_lab.record("accuracy", 0.91)    # in a job: a metric of the job's MLflow run   # doctest: +SKIP
    accuracy = 0.91
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"metric name {name!r} is not valid: use letters, digits, '_', '-', '.', ' ' or '/'")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"record({name!r}, {value!r}): the value must be a number") from None
    if math.isinf(number):
        raise ConfigError(f"record({name!r}, {value!r}): the value must be finite")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ConfigError(f"record({name!r}, step={step!r}): step must be a whole number >= 0")
    path = os.environ.get(ENV_METRICS)
    with _lock:
        _recorded[name] = number
        if path:
            line = json.dumps({"name": name, "value": None if math.isnan(number) else number, "ts": time.time(),
                               "step": step})
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
    job = os.environ.get(ENV_JOB)
    print(f"{name} = {number:g}" + (f"  (recorded for job {job})" if path and job else ""))


def recorded() -> dict[str, float]:
    """What this process recorded so far (last value per name)."""
    with _lock:
        return dict(_recorded)


def read_metrics(path) -> list[dict]:
    """The records a job's kernel appended (a torn last line is skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    value = item.get("value")
                    item["value"] = math.nan if value is None else float(value)
                    out.append(item)
    except FileNotFoundError:
        pass
    return out
