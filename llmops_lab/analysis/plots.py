"""Plots (pure): :func:`plot_stats` draws a calls frame as three panels on a ``matplotlib.figure.Figure``
(no pyplot, no global backend); :func:`_show` displays one as a PNG in IPython.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from llmops_lab.analysis.summary import NO_GROUP, _percentile, _sort_key

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["plot_stats"]


def _note(ax: Any, title: str, text: str) -> None:
    ax.set_title(title, loc="left", fontsize=10)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_stats(calls: "pd.DataFrame") -> "Figure":
    """Three panels to look at instead of read: latency p50/p95 per day, cost per day, and mean score per
    prompt version over time (one point per run). A panel without data says so instead of plotting.

    Built on ``matplotlib.figure.Figure`` (no pyplot, no global backend, no ``show``): it renders with Agg,
    with or without a display, and Jupyter shows the returned figure.

    >>> fig = plot_stats(load_calls("30d"))                                       # doctest: +SKIP
    >>> fig.savefig("stats.png", dpi=120)                                         # doctest: +SKIP
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DateFormatter, DayLocator
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 9), layout="constrained")
    ax_latency, ax_cost, ax_score = fig.subplots(3, 1)
    if calls.empty:
        fig.suptitle("no calls in this period")
    else:
        first, last = calls["ts"].min(), calls["ts"].max()
        fig.suptitle(f"{len(calls):,} calls · {first:%Y-%m-%d} – {last:%Y-%m-%d} UTC", fontsize=11)

    def days(frame: "pd.DataFrame") -> Any:
        return frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D").to_numpy()

    def dates(ax: Any, xs: Any, daily: bool = False) -> None:
        import pandas as pd

        xs = pd.to_datetime(pd.Series(list(xs)))
        lo, hi = xs.min(), xs.max()
        pad = max((hi - lo) * 0.05, pd.Timedelta(hours=18))  # one day alone is not a span of years
        ax.set_xlim(lo - pad, hi + pad)
        if daily:  # one tick per day (every few days over long spans), never hours for per-day values
            ax.xaxis.set_major_locator(DayLocator(interval=max(1, math.ceil(((hi - lo).days + 1) / 8))))
            ax.xaxis.set_major_formatter(DateFormatter("%b %d"))
        else:
            locator = AutoDateLocator(minticks=2, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.grid(alpha=0.3)

    timed = calls[~calls["error"].astype(bool) & ~calls["cached"].astype(bool) & calls["latency_ms"].notna()] \
        if len(calls) else calls
    if len(timed):
        per_day = timed.groupby(days(timed))["latency_ms"].agg(
            p50=lambda v: _percentile(v, 50), p95=lambda v: _percentile(v, 95))
        ax_latency.plot(per_day.index, per_day["p50"], marker="o", label="p50")
        ax_latency.plot(per_day.index, per_day["p95"], marker="o", label="p95")
        ax_latency.set_title("latency per day (calls that reached the model)", loc="left", fontsize=10)
        ax_latency.set_ylabel("ms")
        ax_latency.set_ylim(bottom=0)
        ax_latency.legend(fontsize=8)
        dates(ax_latency, per_day.index, daily=True)
    else:
        _note(ax_latency, "latency per day", "no completed calls in this period")

    priced = calls[calls["cost_usd"].notna()] if len(calls) else calls
    if len(priced):
        cost = priced.groupby(days(priced))["cost_usd"].sum()
        ax_cost.bar(cost.index, cost.to_numpy(), width=0.8, color="tab:green")
        ax_cost.set_title("cost per day", loc="left", fontsize=10)
        ax_cost.set_ylabel("USD")
        dates(ax_cost, cost.index, daily=True)
    else:
        _note(ax_cost, "cost per day", "no cost recorded (no price known for these models)")

    scores = [c for c in calls.columns if str(c).startswith("score.") and calls[c].notna().any()]
    if scores:
        lines, stamps = 0, []
        for score in scores:
            scored = calls[calls[score].notna()]
            for prompt, part in sorted(scored.groupby(scored["prompt"].fillna(NO_GROUP)),
                                       key=lambda kv: _sort_key(kv[0])):
                per_run = part.groupby("run_id").agg(ts=("ts", "first"), value=(score, "mean")).sort_values("ts")
                stamps += list(per_run["ts"].dt.tz_localize(None))
                ax_score.plot(per_run["ts"].dt.tz_localize(None), per_run["value"], marker="o",
                              label=f"{prompt} · {score[len('score.'):]}")
                lines += 1
        ax_score.set_title("mean score per prompt version (one point per run)", loc="left", fontsize=10)
        ax_score.legend(fontsize=7, ncols=2 if lines > 6 else 1)
        dates(ax_score, stamps)
    else:
        _note(ax_score, "score per prompt version", "no scored batches in this period")
    return fig


def _show(fig: "Figure") -> None:
    """Display in a notebook as a PNG (works whatever the matplotlib backend); outside IPython, nothing."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is None:
        return
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    display(Image(data=buffer.getvalue(), format="png"))
