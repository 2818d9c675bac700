"""Drift (pure): did a metric's recent window shift from its baseline? :func:`detect_drift` for one series,
:func:`drift_report` per group and metric of a calls frame, :func:`drift_flags` as gate-ready numbers.
The tests (:func:`mann_whitney`, :func:`two_proportion_z`) are computed here, no scipy needed.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from llmops_lab.analysis.summary import _check_by, _group_keys, _sort_key
from llmops_lab.core.durations import duration as _duration
from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DRIFT_BY_CHOICES", "DEFAULT_DRIFT_METRICS", "DriftResult", "split_windows", "mann_whitney",
           "two_proportion_z", "detect_drift", "drift_report", "drift_flags"]

DRIFT_BY_CHOICES: tuple[str | None, ...] = (None, "model", "prompt", "prompt_name", "notebook", "experiment")
DEFAULT_DRIFT_METRICS = ("latency_ms", "output_chars", "error", "score.*")


@dataclass(frozen=True)
class DriftResult:
    """The outcome of comparing a metric's recent window with its baseline window.

    ``baseline``/``current``: mean (kind "mean") or proportion (kind "rate") of each window. ``change``:
    relative change of the mean (0.5 = +50 %) or absolute change of the rate (0.05 = +5 points).
    ``statistic``: z of the test (positive: current higher). ``shifted``: p < threshold *and* |change| >=
    min_change. ``test``: "mann-whitney", "two-proportion-z" or "insufficient-data".
    """

    metric: str
    kind: str
    shifted: bool
    direction: str | None  # "up" | "down" | None (no difference)
    baseline: float | None
    current: float | None
    change: float | None
    p_value: float | None
    statistic: float | None
    n_baseline: int
    n_current: int
    test: str
    threshold: float
    min_change: float
    min_n: int

    def _values(self) -> str:
        if self.kind == "rate":
            change = f"{self.change * 100:+.1f} pts"
            return f"{self.baseline:.1%} → {self.current:.1%} ({change})"
        change = "new" if self.change is not None and math.isinf(self.change) else f"{self.change:+.0%}"
        return f"{_fmt(self.baseline)} → {_fmt(self.current)} ({change})"

    def short(self) -> str:
        """Compact flag for tables: ``latency_ms ↑ +52%``, ``error ↑ +12.0 pts``."""
        if self.test == "insufficient-data":
            return f"{self.metric} ?"
        arrow = {"up": "↑", "down": "↓"}.get(self.direction or "", "=")
        if self.kind == "rate":
            return f"{self.metric} {arrow} {self.change * 100:+.1f} pts"
        return f"{self.metric} {arrow} " + ("new" if math.isinf(self.change or 0) else f"{self.change:+.0%}")

    def describe(self) -> str:
        """One line, e.g. ``latency_ms shifted up: 101 → 153 (+52%), mann-whitney p=3.1e-09, 100 baseline vs 30 recent``."""
        sizes = f"{self.n_baseline} baseline vs {self.n_current} recent"
        if self.test == "insufficient-data":
            return f"{self.metric}: not enough data to compare ({sizes}; need {self.min_n} in each window)"
        test = (f"{self.test} p={self.p_value:.2g}" if self.test == "mann-whitney"
                else f"{self.test} z={self.statistic:.2f} p={self.p_value:.2g}")
        if self.shifted:
            state = f"shifted {self.direction}"
        elif self.p_value is not None and self.p_value < self.threshold:
            size = f"{self.min_change * 100:g} pts" if self.kind == "rate" else f"{self.min_change:.0%}"
            state = f"stable (significant but below the {size} minimum change)"
        else:
            state = "stable"
        return f"{self.metric} {state}: {self._values()}, {test}, {sizes}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _window(spec: int | str | timedelta | None, what: str, allow_none: bool) -> int | timedelta | None:
    if spec is None and allow_none:
        return None
    if isinstance(spec, bool):
        raise ConfigError(f"{what}={spec!r}: use a number of points (e.g. 50) or a duration (e.g. '7d')")
    if isinstance(spec, int):
        if spec < 1:
            raise ConfigError(f"{what}={spec!r}: a number of points must be at least 1")
        return spec
    if isinstance(spec, (str, timedelta)):
        return _duration(spec, what)
    raise ConfigError(f"{what}={spec!r}: use a number of points (e.g. 50) or a duration (e.g. '7d')"
                      + (", or None for everything before the window" if allow_none else ""))


def split_windows(series: "pd.Series", baseline: int | str | timedelta | None = None,
                  window: int | str | timedelta = "1d") -> tuple["pd.Series", "pd.Series"]:
    """(baseline, current) parts of ``series`` (NaN dropped, sorted by index).

    ``window``: the last N points, or the points within a duration of the *last* point (not of now, so
    a prompt last used a week ago is still compared with its own past). ``baseline``: the N points, or
    the duration, just before the window; None = everything before it. Durations need a DatetimeIndex.
    """
    import pandas as pd

    win = _window(window, "window", allow_none=False)
    base = _window(baseline, "baseline", allow_none=True)
    s = series.dropna().sort_index(kind="stable")
    if s.empty:
        return s, s
    if (isinstance(win, timedelta) or isinstance(base, timedelta)) and not isinstance(s.index, pd.DatetimeIndex):
        raise ConfigError("a duration window or baseline needs values indexed by time; use a number of points")
    if isinstance(win, int):
        cut = len(s) - min(win, len(s))
        current, before = s.iloc[cut:], s.iloc[:cut]
        start = current.index[0] if isinstance(s.index, pd.DatetimeIndex) else None
    else:
        start = s.index[-1] - pd.Timedelta(win)
        current, before = s[s.index > start], s[s.index <= start]
    if base is None:
        past = before
    elif isinstance(base, int):
        past = before.iloc[max(len(before) - base, 0):]
    else:
        past = before[before.index > start - pd.Timedelta(base)]
    return past, current


def _normal_sf2(z: float) -> float:
    """Two-sided p-value of a standard normal z."""
    return min(1.0, math.erfc(abs(z) / math.sqrt(2)))


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test, normal approximation with tie and continuity correction (the same
    numbers as ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")``). Returns (z, p); z > 0 when y
    tends to be larger than x."""
    import numpy as np
    import pandas as pd

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n1, n2 = len(x), len(y)
    both = np.concatenate([x, y])
    ranks = pd.Series(both).rank(method="average").to_numpy()
    u_y = ranks[n1:].sum() - n2 * (n2 + 1) / 2
    mu = n1 * n2 / 2
    n = n1 + n2
    _, counts = np.unique(both, return_counts=True)
    ties = float((counts ** 3 - counts).sum())
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 0.0, 1.0
    z = (abs(u_y - mu) - 0.5) / sigma
    p = min(1.0, math.erfc(z / math.sqrt(2))) if z > 0 else 1.0
    return math.copysign(max(z, 0.0), u_y - mu), p


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of k2/n2 against k1/n1; returns (z, two-sided p)."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / se
    return z, _normal_sf2(z)


def detect_drift(series: "pd.Series", baseline: int | str | timedelta | None = None,
                 window: int | str | timedelta = "1d", kind: Literal["mean", "rate"] | None = None,
                 threshold: float = 0.01, min_change: float | None = None, min_n: int = 5,
                 metric: str | None = None) -> DriftResult:
    """Did the recent ``window`` of ``series`` shift from its ``baseline`` window? (pure)

    ``series``: values indexed by time (or by order, with point-count windows). ``window``: the last N
    points or a duration ending at the last point (default the last day); ``baseline``: N points or a
    duration right before the window, None (default) for everything before it.

    * kind ``"mean"`` (numbers: latency, output length, scores): Mann-Whitney U test (rank based, so one
      slow outlier does not make a shift; computed here, no scipy needed) and the relative change of the
      means; ``min_change`` defaults to 0.10 (10 %).
    * kind ``"rate"`` (booleans / 0-1: errors, pass/fail scores): pooled two-proportion z-test on the
      proportions; ``min_change`` is absolute and defaults to 0.02 (2 points).
    * kind None: "rate" for a bool series, else "mean".

    Shifted when p < ``threshold`` (default 0.01) and the change is at least ``min_change`` — significant
    *and* big enough to matter on large samples. Fewer than ``min_n`` points in a window: not shifted,
    test "insufficient-data".

    >>> r = detect_drift(calls.set_index("ts")["latency_ms"], baseline="7d", window="1d")  # doctest: +SKIP
    >>> r.shifted, r.describe()                                                            # doctest: +SKIP
    (True, 'latency_ms shifted up: 101 → 153 (+52%), mann-whitney p=3.1e-09, 100 baseline vs 30 recent')
    """
    import numpy as np

    if kind is None:
        kind = "rate" if str(series.dtype) == "bool" else "mean"
    if kind not in ("mean", "rate"):
        raise ConfigError(f"kind={kind!r}: use 'mean' (numbers) or 'rate' (booleans / 0-1 values)")
    if not 0 < threshold < 1:
        raise ConfigError(f"threshold={threshold!r}: a p-value threshold between 0 and 1, e.g. 0.01")
    min_change = (0.02 if kind == "rate" else 0.10) if min_change is None else float(min_change)
    name = metric or (str(series.name) if series.name is not None else "value")
    past, current = split_windows(series.astype(float) if kind == "rate" else series, baseline, window)
    x, y = past.to_numpy(dtype=float), current.to_numpy(dtype=float)
    common = {"metric": name, "kind": kind, "n_baseline": len(x), "n_current": len(y), "threshold": threshold,
              "min_change": min_change, "min_n": min_n}
    if len(x) < min_n or len(y) < min_n:
        return DriftResult(shifted=False, direction=None, baseline=float(x.mean()) if len(x) else None,
                           current=float(y.mean()) if len(y) else None, change=None, p_value=None,
                           statistic=None, test="insufficient-data", **common)
    base, cur = float(x.mean()), float(y.mean())
    if kind == "rate":
        if not np.isin(np.concatenate([x, y]), (0.0, 1.0)).all():
            raise ConfigError(f"{name}: a rate needs booleans or 0/1 values; use kind='mean' for other numbers")
        z, p = two_proportion_z(int(x.sum()), len(x), int(y.sum()), len(y))
        change, test = cur - base, "two-proportion-z"
    else:
        z, p = mann_whitney(x, y)
        change = (cur - base) / abs(base) if base != 0 else (0.0 if cur == 0 else math.copysign(math.inf, cur))
        test = "mann-whitney"
    direction = "up" if cur > base else "down" if cur < base else None
    shifted = bool(p < threshold and abs(change) >= min_change)
    return DriftResult(shifted=shifted, direction=direction, baseline=base, current=cur, change=change,
                       p_value=p, statistic=z, test=test, **common)


def _metric_series(calls: "pd.DataFrame", metric: str) -> tuple["pd.Series", str]:
    """The values a drift metric is judged on, indexed by time, and its kind."""
    import numpy as np

    if metric == "error":
        return calls.set_index("ts")["error"].astype(bool), "rate"
    if metric == "latency_ms":  # what the model took: not cache hits, not failures
        rows = calls[~calls["error"].astype(bool) & ~calls["cached"].astype(bool)]
    elif metric == "output_chars":
        rows = calls[~calls["error"].astype(bool)]
    else:
        rows = calls
    series = rows.set_index("ts")[metric].astype(float).dropna()
    binary = len(series) > 0 and bool(np.isin(series.to_numpy(), (0.0, 1.0)).all())
    return series, "rate" if metric.startswith("score.") and binary else "mean"


def drift_report(calls: "pd.DataFrame", by: str | None = "prompt",
                 metrics: Sequence[str] = DEFAULT_DRIFT_METRICS, *, baseline: int | str | timedelta | None = None,
                 window: int | str | timedelta = "1d", threshold: float = 0.01, min_n: int = 5) -> "pd.DataFrame":
    """:func:`detect_drift` for each group and metric of a calls frame (pure); one row per (group, metric).

    ``metrics`` may use globs (``"score.*"``); metrics absent from ``calls`` are skipped. ``latency_ms`` is
    judged on calls that reached the model, ``output_chars`` on calls without error, ``error`` as a rate
    over every call, 0/1 scores as rates and other scores as means. ``by``: None, "model", "prompt"
    (name@version), "prompt_name" (all versions together: a new version that changed things shows),
    "notebook" (a job's notebook) or "experiment".

    >>> report = drift_report(load_calls("14d"), by="prompt", baseline="7d", window="1d")   # doctest: +SKIP
    >>> report[report.shifted][["prompt", "description"]]                                 # doctest: +SKIP

    Columns: [by], metric, kind, shifted, direction, baseline, current, change, p_value, statistic,
    n_baseline, n_current, test, flag (short form: ``latency_ms ↑ +52%``), description (one line).
    """
    import pandas as pd

    _check_by(by, DRIFT_BY_CHOICES)
    names: list[str] = []
    for pattern in metrics:
        matched = [c for c in calls.columns if fnmatch.fnmatchcase(str(c), pattern)] if any(
            ch in pattern for ch in "*?[") else ([pattern] if pattern in calls.columns else [])
        names += [m for m in matched if m not in names]
    columns = ([by] if by else []) + ["metric", "kind", "shifted", "direction", "baseline", "current", "change",
                                      "p_value", "statistic", "n_baseline", "n_current", "test", "flag",
                                      "description"]
    rows = []
    groups = [(None, calls)] if by is None else list(calls.groupby(_group_keys(calls, by).to_numpy(), sort=False))
    for key, group in groups:
        for metric in names:
            series, kind = _metric_series(group, metric)
            if series.empty:
                continue
            result = detect_drift(series, baseline=baseline, window=window, kind=kind, threshold=threshold,
                                  min_n=min_n, metric=metric)
            row = {k: v for k, v in result.to_dict().items() if k in columns}
            row["flag"] = result.short()
            if by:
                row[by] = key
            rows.append(row)
    frame = pd.DataFrame(rows, columns=columns)
    if by and len(frame):
        order = sorted(range(len(frame)), key=lambda i: (_sort_key(frame[by].iloc[i]), names.index(frame["metric"].iloc[i])))
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def drift_flags(report: "pd.DataFrame") -> dict[str, float]:
    """Gate-ready numbers from a :func:`drift_report`: ``drift.<metric>`` = 1.0 when any group shifted on
    it (0.0 otherwise) and ``drift.any``; e.g. a job gate ``{"metric": "drift.any", "max": 0}``.

    >>> drift_flags(drift_report(calls))                                        # doctest: +SKIP
    {'drift.latency_ms': 1.0, 'drift.output_chars': 0.0, 'drift.error': 0.0, 'drift.any': 1.0}
    """
    flags: dict[str, float] = {}
    for metric, shifted in zip(report.get("metric", []), report.get("shifted", [])):
        key = f"drift.{metric}"
        flags[key] = max(flags.get(key, 0.0), 1.0 if shifted else 0.0)
    flags["drift.any"] = max(flags.values(), default=0.0)
    return flags


def _drift_column(report: "pd.DataFrame", by: str, keys: Iterable[Any]) -> list[str]:
    """Per group: the shifted metrics (``latency_ms ↑ +52%; error ↑ +12.0 pts``), ``ok``, or ``too few calls``."""
    out = []
    for key in keys:
        part = report[report[by] == key]
        checked = part[part["test"] != "insufficient-data"]
        shifted = checked[checked["shifted"]]
        if len(shifted):
            out.append("; ".join(shifted["flag"]))
        else:
            out.append("ok" if len(checked) else "too few calls")
    return out
