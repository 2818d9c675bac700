"""Audit trail: who ran what, from where — read back from the runs' tags in MLflow.

Every run llmops-lab logs carries ``llmops.user``, ``llmops.notebook``, ``llmops.git_commit``,
``llmops.prompt`` (name@version), ``llmops.kind``, ``llmops.redaction`` and, for batches, the dataset
digest (param ``dataset_digest``). :func:`audit_log` lists them for a time range::

    >>> llmops_lab.audit.audit_log(since="7d", user="ada")                             # doctest: +SKIP

and ``llmops-lab audit --since 2024-06-01 --until 2024-07-01 [--user U] [--json]`` prints them.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from llmops_lab.exceptions import ConfigError

COLUMNS = ["time", "user", "kind", "status", "experiment", "notebook", "git_commit", "model", "prompt",
           "dataset_digest", "redaction", "run_id"]
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | datetime | None, now: datetime | None = None, *, what: str = "time") -> datetime | None:
    """``7d`` / ``24h`` / ``30m`` / ``2w`` ago, an ISO date or date-time (UTC unless it says otherwise), or None."""
    if text is None or isinstance(text, datetime):
        return text if text is None or text.tzinfo else text.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    value = str(text).strip()
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if value == "now":
        return now
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a time: use 7d, 24h, 30m, 2w, now, or a date such as 2024-06-01 "
                          "(or 2024-06-01T12:00)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def audit_log(since: str | datetime | None = "7d", until: str | datetime | None = None, *, user: str | None = None,
              limit: int = 10_000, tracking_uri: str | None = None) -> Any:
    """llmops-lab runs started in ``[since, until)``, newest first, as a DataFrame (columns: ``COLUMNS``)."""
    import pandas as pd

    now = datetime.now(timezone.utc)
    start = parse_when(since, now, what="--since")
    end = parse_when(until, now, what="--until")
    if start is not None and end is not None and start >= end:
        raise ConfigError(f"--since ({start:%Y-%m-%d %H:%M}) must be before --until ({end:%Y-%m-%d %H:%M})")
    if not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit={limit!r} must be a whole number >= 1")
    from llmops_lab.tracking.reader import audit_rows

    rows = audit_rows(start, end, user, limit, tracking_uri)
    for row in rows:
        row["time"] = pd.Timestamp(row["time"], unit="ms", tz="UTC")
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(frame: Any) -> str:
    """Fixed-width text for the terminal."""
    if len(frame) == 0:
        return "no llmops-lab runs in this time range"
    shown = frame.copy()
    shown["time"] = shown["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
    shown["git_commit"] = shown["git_commit"].fillna("").str[:10]
    shown["run_id"] = shown["run_id"].str[:12]
    return shown.fillna("").to_string(index=False)
