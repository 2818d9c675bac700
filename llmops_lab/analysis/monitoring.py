"""Monitoring, the public facade (``llmops_lab.monitoring``): how calls behave over time — volume, errors,
latency percentiles, throughput, tokens, cost, scores — and whether a prompt drifted from its baseline.
Read back from MLflow, never from a private copy. No logic lives here; each name comes from its module:

* **Readers** (``llmops_lab.tracking.reader``): :func:`load_runs` (one row per run), :func:`load_calls`
  (one row per *call*: a single run is one call; a batch run is one call per data row, read from its
  ``results.csv``), :func:`recent_runs`. They flush the spool first, so the cell that just ran is counted.
* **Pure functions** over the calls frame: :func:`summarize` (``analysis.summary``), :func:`detect_drift`,
  :func:`drift_report`, :func:`drift_flags` (``analysis.drift``), :func:`plot_stats` (``analysis.plots``);
  :func:`stats` (``analysis.overview``) ties them together (``%llm stats``).

>>> from llmops_lab.analysis import monitoring as mon
>>> calls = mon.load_calls(since="7d")                               # doctest: +SKIP
>>> mon.summarize(calls, by="prompt")                                # doctest: +SKIP
>>> mon.drift_report(calls, by="prompt").query("shifted")            # doctest: +SKIP
>>> mon.plot_stats(calls).savefig("stats.png")                       # doctest: +SKIP
"""
from __future__ import annotations

from llmops_lab.analysis.drift import (  # noqa: F401 - re-exported
    DEFAULT_DRIFT_METRICS, DRIFT_BY_CHOICES, DriftResult, detect_drift, drift_flags, drift_report, mann_whitney,
    split_windows, two_proportion_z)
from llmops_lab.analysis.overview import stats
from llmops_lab.analysis.plots import plot_stats
from llmops_lab.analysis.summary import BY_CHOICES, NO_GROUP, SUMMARY_COLUMNS, summarize  # noqa: F401
from llmops_lab.core.durations import parse_since
from llmops_lab.tracking.reader import (  # noqa: F401 - re-exported
    BATCH_KINDS, CALL_COLUMNS, CALL_KINDS, FIXED_RUN_COLUMNS, artifact_text, load_calls, load_runs, recent_runs)

__all__ = ["BY_CHOICES", "CALL_COLUMNS", "SUMMARY_COLUMNS", "DriftResult", "parse_since", "load_runs",
           "load_calls", "recent_runs", "summarize", "split_windows", "mann_whitney", "two_proportion_z",
           "detect_drift", "drift_report", "drift_flags", "plot_stats", "stats"]
