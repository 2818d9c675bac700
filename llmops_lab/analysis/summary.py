"""Pure statistics over a calls frame (:func:`llmops_lab.tracking.reader.load_calls`): volume, errors, latency
percentiles, throughput, tokens, cost and score means per group (:func:`summarize`).

Latency percentiles use linear interpolation, exactly as a batch computes its ``latency_p50_ms`` /
``latency_p95_ms`` metrics, over calls that reached the model (cached rows and errors excluded); rows/s
is a batch's own ``rows_per_s`` metric (rows / wall time, what ``benchmarks/batch_throughput.py``
measures), so these views and the benchmarks report the same figures.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Sequence

from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BY_CHOICES", "SUMMARY_COLUMNS", "NO_GROUP", "summarize"]

BY_CHOICES: tuple[str | None, ...] = (None, "model", "prompt", "day", "notebook", "kind")
SUMMARY_COLUMNS = ["runs", "calls", "errors", "error_rate", "cache_hits", "latency_p50_ms", "latency_p95_ms",
                   "latency_p99_ms", "tokens_in", "tokens_out", "tokens_per_s", "rows_per_s", "cost_usd"]
NO_GROUP = "(none)"


def _check_by(by: str | None, choices: Sequence[str | None] = BY_CHOICES) -> None:
    if by not in choices:
        listed = ", ".join(str(c) for c in choices if c is not None)
        raise ConfigError(f"by={by!r}: group by one of {listed} (or None for one line)")


def _group_keys(calls: "pd.DataFrame", by: str) -> "pd.Series":
    if by == "day":
        return calls["ts"].dt.tz_convert("UTC").dt.floor("D").dt.date
    if by == "prompt_name":
        return calls["prompt"].fillna(NO_GROUP).astype(str).str.rsplit("@", n=1).str[0]
    return calls[by].fillna(NO_GROUP).astype(str)


def _sort_key(value: Any) -> tuple:
    """Natural order: ``p@2`` before ``p@10``."""
    text = str(value)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def _percentile(values: Any, q: float) -> float:
    """Linear interpolation, as ``batch`` computes its latency metrics; NaN when there is nothing."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if len(values) else math.nan


def _summary_row(g: "pd.DataFrame", scores: list[str]) -> dict[str, Any]:
    error, cached = g["error"].astype(bool), g["cached"].astype(bool)
    timed = g[~error & ~cached & g["latency_ms"].notna()]
    latency = timed["latency_ms"].to_numpy(dtype=float)
    seconds = latency.sum() / 1000
    batch_rows = g[g["run_rows_per_s"].notna() & (g["run_rows_per_s"] > 0)]
    rows_per_s = math.nan
    if len(batch_rows):
        per_run = batch_rows.groupby("run_id")["run_rows_per_s"].agg(["size", "first"])
        rows_per_s = float(per_run["size"].sum() / (per_run["size"] / per_run["first"]).sum())
    n, errors = len(g), int(error.sum())
    row = {"runs": int(g["run_id"].nunique()), "calls": n, "errors": errors, "error_rate": errors / n if n else math.nan,
           "cache_hits": int(cached.sum()),
           "latency_p50_ms": _percentile(latency, 50), "latency_p95_ms": _percentile(latency, 95),
           "latency_p99_ms": _percentile(latency, 99),
           "tokens_in": int(g["prompt_tokens"].fillna(0).sum()), "tokens_out": int(g["completion_tokens"].fillna(0).sum()),
           "tokens_per_s": float(timed["completion_tokens"].fillna(0).sum() / seconds) if seconds > 0 else math.nan,
           "rows_per_s": rows_per_s, "cost_usd": float(g["cost_usd"].sum(min_count=1))}
    for column in scores:
        row[column] = float(g[column].mean()) if g[column].notna().any() else math.nan
    return row


def summarize(calls: "pd.DataFrame", by: str | None = None) -> "pd.DataFrame":
    """Per group: volume, errors, latency percentiles, throughput, tokens, cost and score means (pure).

    Columns (after the ``by`` column, when grouping)::

        runs, calls, errors, error_rate, cache_hits,
        latency_p50_ms, latency_p95_ms, latency_p99_ms   # calls that reached the model: not cached, no error
        tokens_in, tokens_out                            # prompt / completion tokens, every call
        tokens_per_s                                     # completion tokens / latency s, same calls as latency
        rows_per_s                                       # batches: their rows / their wall time (NaN: no batch)
        cost_usd                                         # sum over calls with a known price; NaN if none
        score.<name> ...                                 # mean per scorer

    >>> summarize(load_calls("7d"), by="model")                                        # doctest: +SKIP

    ``by``: None (one line), "model", "prompt", "day" (UTC date) or "notebook"; else ConfigError.
    """
    import pandas as pd

    _check_by(by)
    scores = [c for c in calls.columns if str(c).startswith("score.")]
    columns = ([by] if by else []) + SUMMARY_COLUMNS + scores
    if calls.empty:
        return pd.DataFrame(columns=columns)
    if by is None:
        return pd.DataFrame([_summary_row(calls, scores)], columns=columns)
    keys = _group_keys(calls, by)
    rows = [{by: key, **_summary_row(group, scores)}
            for key, group in calls.groupby(keys.to_numpy(), sort=False)]
    frame = pd.DataFrame(rows, columns=columns)
    order = sorted(range(len(frame)), key=lambda i: frame[by].iloc[i] if by == "day" else _sort_key(frame[by].iloc[i]))
    return frame.iloc[order].reset_index(drop=True)
