"""Pure cron maths: next run times in a timezone, what is due since a time, and a cron line in words."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAY_NAMES = {d[:3].lower(): i for i, d in enumerate(DAYS[:7])}
MONTHS = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
MONTH_NAMES = {m[:3].lower(): i for i, m in enumerate(MONTHS) if m}
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

def _parse(field: str, names: dict[str, int] | None = None) -> list[int] | None:
    """Plain numbers, lists and ranges (e.g. ``1-5``, ``1,3``); None for steps, ``*`` or anything else."""
    values: list[int] = []
    for part in field.split(","):
        bounds = part.split("-")
        if len(bounds) > 2:
            return None
        try:
            nums = [names[b.lower()] if names and b.lower() in names else int(b) for b in bounds]
        except ValueError:
            return None
        values.extend(range(nums[0], nums[-1] + 1) if len(nums) == 2 else nums)
    return values


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _days(field: str) -> str | None:
    if "-" in field and "," not in field and "/" not in field:
        lo, hi = field.split("-")
        try:
            a = DAY_NAMES.get(lo.lower(), None) if not lo.isdigit() else int(lo)
            b = DAY_NAMES.get(hi.lower(), None) if not hi.isdigit() else int(hi)
        except ValueError:
            return None
        if a is None or b is None or not 0 <= a <= 7 or not 0 <= b <= 7:
            return None
        return f"{DAYS[a]} through {DAYS[b]}"
    values = _parse(field, DAY_NAMES)
    if values is None or any(not 0 <= v <= 7 for v in values):
        return None
    return _join([DAYS[v] for v in values])


def _step(field: str) -> int | None:
    if field.startswith("*/") and field[2:].isdigit():
        return int(field[2:])
    return None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(schedule: str) -> str:
    """``0 2 * * *`` -> ``at 02:00, every day``. Common shapes in words, anything else field by field."""
    expr = ALIASES.get(schedule.strip().lower(), schedule)
    fields = expr.split()
    if len(fields) != 5:
        return f"cron {schedule}"
    minute, hour, dom, month, dow = fields
    minutes, hours = _parse(minute), _parse(hour)
    if minutes is not None and hours is not None and len(minutes) * len(hours) <= 6:
        when = "at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    elif minutes is not None and len(minutes) == 1 and hour == "*":
        when = "every hour" if minutes[0] == 0 else f"at minute {minutes[0]} of every hour"
    elif minutes is not None and len(minutes) == 1 and _step(hour):
        when = f"at minute {minutes[0]} of every {_ordinal(_step(hour))} hour"
    elif minute == "*" and hour == "*":
        when = "every minute"
    elif _step(minute) and hour == "*":
        when = f"every {_step(minute)} minutes"
    elif _step(minute) and hours is not None:
        when = f"every {_step(minute)} minutes during hour {_join([str(h) for h in hours])}"
    else:
        when = f"at minute {minute} of hour {hour}"
    if dom == "*" and dow == "*":
        days = "every day"
    else:
        parts = []
        if dom != "*":
            doms = _parse(dom)
            parts.append(f"on day {_join([str(d) for d in doms])} of the month" if doms else f"on day-of-month {dom}")
        if dow != "*":
            names = _days(dow)
            parts.append(f"on {names}" if names else f"on day-of-week {dow}")
        days = " or ".join(parts) if len(parts) == 2 else parts[0]  # cron: either field matches
    if month != "*":
        months = _parse(month, MONTH_NAMES)
        valid = months is not None and all(1 <= m <= 12 for m in months)
        days += f", in {_join([MONTHS[m] for m in months])}" if valid else f", in month {month}"
    if days == "every day" and when.startswith("every"):
        return when  # "every 15 minutes", not "every 15 minutes, every day"
    return f"{when}, {days}"
