"""``llmops_lab.stats`` / ``%llm stats``: the calls of a period read back from MLflow
(:func:`llmops_lab.tracking.reader.load_calls`), summarized, with a drift column and optional charts.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from llmops_lab.analysis.drift import _drift_column, drift_report
from llmops_lab.analysis.plots import _show, plot_stats
from llmops_lab.analysis.summary import _check_by, summarize
from llmops_lab.core.durations import parse_since
from llmops_lab.tracking.reader import load_calls

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["stats"]


def stats(since: str | timedelta | None = "7d", by: str | None = None, experiment: str | None = None,
          plot: bool = False, *, baseline: int | str | timedelta | None = None,
          window: int | str | timedelta = "1d") -> "pd.DataFrame":
    """``%llm stats``: :func:`load_calls` + :func:`summarize`; ``plot=True`` also displays the
    :func:`plot_stats` charts (as a PNG, in IPython; elsewhere call :func:`plot_stats` for the Figure).

    With ``by="prompt"`` a ``drift`` column flags each prompt version whose last ``window`` (default the
    last day of its calls) shifted from its ``baseline`` (default everything before, within ``since``)
    in latency, output length, error rate or scores: ``latency_ms ↑ +52%``, ``ok`` or ``too few calls``;
    :func:`drift_report` has the details.

    >>> llmops_lab.stats("7d", by="prompt")                                    # doctest: +SKIP
    >>> llmops_lab.stats("30d", by="day", plot=True)                           # doctest: +SKIP
    """
    _check_by(by)
    parse_since(since)
    calls = load_calls(since, experiment)
    from llmops_lab.core.results import tidy

    table = tidy(summarize(calls, by))  # readable floats when shown; the values are exact
    if by == "prompt":
        report = drift_report(calls, by="prompt", baseline=baseline, window=window)
        table["drift"] = _drift_column(report, "prompt", table["prompt"]) if len(table) else []
    if plot:
        _show(plot_stats(calls))
    return table
