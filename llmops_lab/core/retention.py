"""The retention table ``[tool.llmops-lab.retention]``: how long each kind of stored data is kept (pure).

>>> limits = parse_retention({"runs": "90d", "cache": "30d", "spool_acked": "7d"})
>>> limits["cache"].days
30
>>> parse_retention({"run": "90d"})
Traceback (most recent call last):
...
llmops_lab.exceptions.ConfigError: [tool.llmops-lab.retention] has no key 'run': use runs, traces, cache, spool_acked, job_outputs

``llmops-lab gc`` (:mod:`llmops_lab.jobs.retention`) applies it; a kind without a limit is kept forever.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from llmops_lab.core.durations import duration
from llmops_lab.exceptions import ConfigError

__all__ = ["KINDS", "parse_retention"]

KINDS = {  # key -> what its limit removes (llmops-lab gc)
    "runs": "llmops-lab runs started earlier, hard-deleted with their artifacts and traces",
    "traces": "traces older than the limit, also those of runs that are kept",
    "cache": "response cache entries stored earlier",
    "spool_acked": "spool files whose records all reached MLflow, last written earlier",
    "job_outputs": "job output notebooks, reports and metrics files written earlier",
}


def parse_retention(table: Mapping[str, Any]) -> dict[str, timedelta]:
    """``{"runs": "90d"}`` -> ``{"runs": timedelta(days=90)}``; a one-line ConfigError names a bad key or value."""
    limits = {}
    for key, value in table.items():
        if key not in KINDS:
            raise ConfigError(f"[tool.llmops-lab.retention] has no key {key!r}: use {', '.join(KINDS)}")
        limits[key] = duration(value, f"[tool.llmops-lab.retention] {key}")
    return limits
