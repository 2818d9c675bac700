"""Durations as users write them: ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` (pure; used by the readers'
``since`` and by drift windows)."""
from __future__ import annotations

import re
from datetime import timedelta

from llmops_lab.exceptions import ConfigError

__all__ = ["duration", "parse_since"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(value: str | timedelta, what: str) -> timedelta:
    """A positive duration from ``"7d"`` (or a timedelta); ``what`` names the option in the error."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ConfigError(f"{what}={value!r}: a duration must be positive, e.g. '7d'")
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{what}={value!r}: use a duration like '30m', '12h', '7d' or '2w'"
                          + (", or None for everything" if what == "since" else ""))
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def parse_since(since: str | timedelta | None) -> timedelta | None:
    """``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` or a timedelta -> timedelta; None or ``"all"`` -> None (everything).

    >>> parse_since("12h")
    datetime.timedelta(seconds=43200)
    >>> parse_since(None) is None
    True
    """
    if since is None or (isinstance(since, str) and since.strip().lower() == "all"):
        return None
    return duration(since, "since")
