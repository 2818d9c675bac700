"""Pure cron maths: next run times in a timezone, what is due since a time, and a cron line in words (cron-descriptor)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
MISSED_COUNT_CAP = 1000


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def next_runs(schedule: str, tz: str, after: datetime, n: int = 3) -> list[datetime]:
    """The next ``n`` run times strictly after ``after``, as aware datetimes in ``tz``."""
    from croniter import croniter

    it = croniter(schedule, _aware(after).astimezone(ZoneInfo(tz)))
    return [it.get_next(datetime) for _ in range(n)]


def previous_run(schedule: str, tz: str, at: datetime) -> datetime:
    """The latest run time at or before ``at``."""
    from croniter import croniter

    start = _aware(at).astimezone(ZoneInfo(tz)) + timedelta(seconds=1)  # "at or before": cron has minute steps
    return croniter(schedule, start).get_prev(datetime)


@dataclass(frozen=True)
class Due:
    """A job is due: ``at`` is the latest missed time (run once for it); ``missed`` counts the run times in
    (last, now] (capped at 1000)."""

    at: datetime
    missed: int


def due(schedule: str, tz: str, last: datetime, now: datetime) -> Due | None:
    """Whether a run time fell in (``last``, ``now``]; if several did (the scheduler was down), one Due."""
    latest = previous_run(schedule, tz, now)
    if latest <= _aware(last):
        return None
    from croniter import croniter

    it = croniter(schedule, _aware(last).astimezone(ZoneInfo(tz)))
    count = 0
    while count < MISSED_COUNT_CAP:
        if it.get_next(datetime) > latest:
            break
        count += 1
    return Due(latest, max(count, 1))


# -- in words ---------------------------------------------------------------------------------------
# cron-descriptor does the work (it knows steps, ranges, L, W and #, which our own describer spelled field by
# field); what stays here is the house style: lower case, aliases, no "only", no redundant "every hour".
_WEEKDAY_FIRST = re.compile(r"^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b")


@lru_cache(maxsize=256)
def describe(schedule: str) -> str:
    """``0 2 * * *`` -> ``at 02:00, every day``; ``*/15 * * * *`` -> ``every 15 minutes`` (cron-descriptor)."""
    from cron_descriptor import ExpressionDescriptor, Options

    expr = ALIASES.get(schedule.strip().lower(), schedule)
    if len(expr.split()) != 5:
        return f"cron {schedule}"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = True  # "every day" is said, so a reader sees nothing was left out
    try:
        text = ExpressionDescriptor(expr, options).get_description()
    except Exception:  # noqa: BLE001 - a description is informative only; validation is croniter's
        return f"cron {schedule}"
    first, *rest = [part.strip() for part in text.split(", ")]
    first = first[:1].lower() + first[1:]
    parts = [first]
    for part in rest:
        if part == "every hour" or (part == "every day" and first.startswith("every")):
            continue  # "every 15 minutes", not "every 15 minutes, every hour, every day"
        if part.startswith("only "):
            part = part[len("only "):]
        if _WEEKDAY_FIRST.match(part):
            part = "on " + part
        parts.append(part)
    return ", ".join(parts)
