"""Monitoring: how calls behave over time — volume, errors, latency percentiles, throughput, tokens, cost,
scores — and whether a prompt drifted from its baseline. Read back from MLflow, never from a private copy.

Two layers, so that everything which counts is testable without a store:

* **Readers** (I/O): :func:`load_runs` (one row per run) and :func:`load_calls` (one row per *call*: a
  single run is one call; a batch run is one call per data row, read from its ``results.csv``).
  Both flush the spool first, so the cell that just ran is counted.
* **Pure functions** over the calls frame: :func:`summarize`, :func:`detect_drift`, :func:`drift_report`,
  :func:`drift_flags`, :func:`plot_stats`. :func:`stats` ties them together (``%llm stats``).

>>> from llmops_lab.analysis import monitoring as mon
>>> calls = mon.load_calls(since="7d")                               # doctest: +SKIP
>>> mon.summarize(calls, by="prompt")                                # doctest: +SKIP
>>> mon.drift_report(calls, by="prompt").query("shifted")            # doctest: +SKIP
>>> mon.plot_stats(calls).savefig("stats.png")                       # doctest: +SKIP

Latency percentiles use linear interpolation, exactly as a batch computes its ``latency_p50_ms`` /
``latency_p95_ms`` metrics, over calls that reached the model (cached rows and errors excluded); rows/s
is a batch's own ``rows_per_s`` metric (rows / wall time, what ``benchmarks/batch_throughput.py``
measures), so these views and the benchmarks report the same figures.
"""
from __future__ import annotations

import fnmatch
import math
import re
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["BY_CHOICES", "CALL_COLUMNS", "SUMMARY_COLUMNS", "DriftResult", "parse_since", "load_runs",
           "load_calls", "recent_runs", "summarize", "split_windows", "mann_whitney", "two_proportion_z",
           "detect_drift", "drift_report", "drift_flags", "plot_stats", "stats"]

BY_CHOICES: tuple[str | None, ...] = (None, "model", "prompt", "day", "notebook")
DRIFT_BY_CHOICES: tuple[str | None, ...] = (None, "model", "prompt", "prompt_name", "notebook", "experiment")
BATCH_KINDS = ("batch",)  # runs whose calls are the rows of their results.csv
CALL_KINDS = ("single", *BATCH_KINDS)  # run kinds made of model calls (job runs hold notebook metrics, not calls)
CALL_COLUMNS = ["ts", "run_id", "kind", "experiment", "notebook", "model", "prompt", "latency_ms",
                "prompt_tokens", "completion_tokens", "cost_usd", "error", "cached", "output_chars", "retries",
                "run_rows_per_s"]
SUMMARY_COLUMNS = ["runs", "calls", "errors", "error_rate", "cache_hits", "latency_p50_ms", "latency_p95_ms",
                   "latency_p99_ms", "tokens_in", "tokens_out", "tokens_per_s", "rows_per_s", "cost_usd"]
DEFAULT_DRIFT_METRICS = ("latency_ms", "output_chars", "error", "score.*")
NO_GROUP = "(none)"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- durations ---------------------------------------------------------------------------------------

def _duration(value: str | timedelta, what: str) -> timedelta:
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
    return _duration(since, "since")


# -- reading MLflow -----------------------------------------------------------------------------------

def _client():
    from llmops_lab.config import get_settings
    from llmops_lab.tracking.mlflow_sink import client_for

    return client_for(get_settings().resolved_tracking_uri())


def _flush(timeout: float = 30.0) -> None:
    from llmops_lab.tracking import flush

    left = flush(timeout)
    if left:
        warnings.warn(f"{left} tracked call(s) are still in the spool (MLflow unreachable?) and are not counted",
                      stacklevel=3)


def _paged(fetch, limit: int | None = None) -> list:
    """Every item of a paged MLflow search (``fetch(page_token, max_results)``)."""
    items: list = []
    token = None
    while True:
        page = fetch(token, 1000 if limit is None else min(1000, limit - len(items)))
        items.extend(page)
        token = getattr(page, "token", None)
        if not token or (limit is not None and len(items) >= limit):
            return items


def _experiments(client: Any, experiment: str | None, missing_ok: bool = False) -> dict[str, str]:
    """{experiment_id: name}: the named experiment, or every active one."""
    if experiment is None:
        found = _paged(lambda token, n: client.search_experiments(max_results=n, page_token=token))
        return {e.experiment_id: e.name for e in found}
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return {exp.experiment_id: exp.name}
    if missing_ok:
        return {}
    names = sorted(e.name for e in _paged(lambda token, n: client.search_experiments(max_results=n,
                                                                                     page_token=token)))
    shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    raise ConfigError(f"experiment {experiment!r} not found; the store has: {shown or 'no experiments yet'}")


def _fetch_runs(since: str | timedelta | None, experiment: str | None, kinds: Iterable[str] | None,
                limit: int | None, flush: bool | float, missing_ok: bool = False) -> tuple[list, dict[str, str], Any]:
    delta = parse_since(since)  # a bad value fails before any I/O
    if flush:
        _flush(30.0 if flush is True else float(flush))
    client = _client()
    experiments = _experiments(client, experiment, missing_ok)
    if not experiments:
        return [], experiments, client
    where = ""
    if delta is not None:
        cutoff = datetime.now(timezone.utc) - delta
        where = f"attributes.start_time >= {int(cutoff.timestamp() * 1000)}"
    runs = _paged(lambda token, n: client.search_runs(list(experiments), where, max_results=n, page_token=token,
                                                      order_by=["attributes.start_time DESC"]),
                  limit if kinds is None else None)
    if kinds is not None:
        wanted = set(kinds)
        runs = [r for r in runs if r.data.tags.get("llmops.kind") in wanted]
    return (runs[:limit] if limit is not None else runs), experiments, client


def load_runs(since: str | timedelta | None = "7d", experiment: str | None = None, *,
              kinds: Iterable[str] | None = None, limit: int | None = None, flush: bool = True) -> "pd.DataFrame":
    """One row per MLflow run, newest first: who/what/when columns then every metric of the run.

    Columns: ``run_id, ts`` (start, UTC), ``end, status, kind, experiment, notebook, model`` (provider:model),
    ``model_name`` (the ``model`` param), ``prompt`` (name@version), ``user, error`` (message), then the
    run's metrics (``latency_ms``, ``cost_usd``, ``rows_per_s``, ``score.<name>``, ...).

    >>> load_runs("2w", kinds=["batch"])[["ts", "prompt", "rows", "latency_p95_ms"]]     # doctest: +SKIP

    ``experiment=None``: every experiment of the store. ``kinds``: keep only these ``llmops.kind`` values.
    """
    runs, experiments, _ = _fetch_runs(since, experiment, kinds, limit, flush)
    return _runs_frame(runs, experiments)


FIXED_RUN_COLUMNS = ["run_id", "ts", "end", "status", "kind", "experiment", "notebook", "model", "model_name",
                     "prompt", "user", "error"]


def _runs_frame(runs: list, experiments: dict[str, str]) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for run in runs:
        tags, info = run.data.tags, run.info
        row = {"run_id": info.run_id, "ts": info.start_time, "end": info.end_time, "status": info.status,
               "kind": tags.get("llmops.kind"), "experiment": experiments.get(info.experiment_id),
               "notebook": tags.get("llmops.notebook"), "model": tags.get("llmops.model"),
               "model_name": run.data.params.get("model"), "prompt": tags.get("llmops.prompt"),
               "user": tags.get("llmops.user"), "error": tags.get("llmops.error")}
        row.update({k: v for k, v in run.data.metrics.items() if k not in row})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in FIXED_RUN_COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in ("ts", "end"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame[FIXED_RUN_COLUMNS + [c for c in frame.columns if c not in FIXED_RUN_COLUMNS]]


def recent_runs(limit: int = 20, experiment: str | None = None) -> "pd.DataFrame":
    """The newest runs of this notebook's experiment (after a flush) as a DataFrame (``%llm runs``).

    Columns: run_id, start (UTC, naive), prompt, model (name without provider), latency_ms, total_tokens,
    cost_usd, status, kind. ``llmops_lab.recent_runs`` / ``llmops_lab.tracking.recent_runs`` call this.
    """
    import pandas as pd

    from llmops_lab.config import get_settings
    from llmops_lab.tracking import context

    name = experiment or context.experiment_name(get_settings(), context.notebook_path())
    runs, experiments, _ = _fetch_runs(None, name, None, limit, flush=10.0, missing_ok=True)
    frame = _runs_frame(runs, experiments)
    columns = ["run_id", "start", "prompt", "model", "latency_ms", "total_tokens", "cost_usd", "status", "kind"]
    out = pd.DataFrame({
        "run_id": frame["run_id"], "start": frame["ts"].dt.tz_localize(None), "prompt": frame["prompt"],
        "model": frame["model_name"], "latency_ms": frame.get("latency_ms"),
        "total_tokens": frame.get("total_tokens"), "cost_usd": frame.get("cost_usd"),
        "status": frame["status"], "kind": frame["kind"]}, columns=columns)
    return out.reset_index(drop=True)


def _is_local(uri: str | None) -> bool:
    from urllib.parse import urlparse

    return urlparse(uri or "").scheme in ("", "file")


def artifact_text(client: Any, run: Any, path: str) -> str | None:
    """A run's text artifact: read in place on a local store, downloaded otherwise; None when absent."""
    import tempfile
    from pathlib import Path
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    uri = run.info.artifact_uri or ""
    parsed = urlparse(uri)
    if _is_local(uri):
        local = Path(url2pathname(parsed.path) if parsed.scheme else uri) / path
        return local.read_text(encoding="utf-8") if local.is_file() else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run.info.run_id, path, tmp)).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - missing artifact on a remote store
        return None


def _base(run: Any, experiments: dict[str, str]) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "kind": tags.get("llmops.kind"),
            "experiment": experiments.get(run.info.experiment_id), "notebook": tags.get("llmops.notebook"),
            "model": tags.get("llmops.model"), "prompt": tags.get("llmops.prompt")}


def _single_call(client: Any, run: Any, experiments: dict[str, str]) -> dict[str, Any]:
    metrics = run.data.metrics
    failed = run.info.status == "FAILED" or "llmops.error" in run.data.tags
    output = None if failed else artifact_text(client, run, "output.md")
    return {"ts": run.info.start_time, **_base(run, experiments),
            "latency_ms": metrics.get("latency_ms", math.nan),
            "prompt_tokens": metrics.get("prompt_tokens", 0.0), "completion_tokens": metrics.get("completion_tokens", 0.0),
            "cost_usd": metrics.get("cost_usd", math.nan), "error": failed, "cached": False,
            "output_chars": math.nan if output is None else len(output), "retries": metrics.get("retries", 0.0),
            "run_rows_per_s": math.nan}


def _numbers(column: "pd.Series") -> "pd.Series":
    """A results.csv column read as text -> floats (``True``/``False`` -> 1/0, blanks -> NaN)."""
    import pandas as pd

    return pd.to_numeric(column.replace({"True": 1.0, "False": 0.0, "true": 1.0, "false": 0.0, "": math.nan}),
                         errors="coerce")


def _batch_calls(client: Any, run: Any, experiments: dict[str, str]) -> "pd.DataFrame | None":
    import io

    import pandas as pd

    text = artifact_text(client, run, "results.csv")
    if text is None:
        warnings.warn(f"batch run {run.info.run_id} has no results.csv; its rows are not counted", stacklevel=4)
        return None
    scores = [k[len("score."):] for k in run.data.metrics if k.startswith("score.")]
    wanted = {"output", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "cached", "retries",
              "error", *scores}
    # Everything as text, nothing guessed as missing: an output "NA" stays "NA", an empty one stays "".
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, usecols=lambda c: c in wanted)
    n = len(table)
    blank = pd.Series([""] * n, index=table.index, dtype=object)
    error = table.get("error", blank) != ""
    output = table.get("output", blank)
    frame = pd.DataFrame({
        "latency_ms": _numbers(table.get("latency_ms", blank)),
        "prompt_tokens": _numbers(table.get("prompt_tokens", blank)).fillna(0.0),
        "completion_tokens": _numbers(table.get("completion_tokens", blank)).fillna(0.0),
        "cost_usd": _numbers(table.get("cost_usd", blank)),
        "error": error,
        "cached": _numbers(table.get("cached", blank)).fillna(0.0).astype(bool),
        "output_chars": output.str.len().where(~error).astype(float),
        "retries": _numbers(table.get("retries", blank)).fillna(0.0),
    })
    for key, value in _base(run, experiments).items():
        frame[key] = value
    frame["ts"] = run.info.start_time
    frame["run_rows_per_s"] = run.data.metrics.get("rows_per_s", math.nan)
    for name in scores:
        frame[f"score.{name}"] = _numbers(table[name]) if name in table else math.nan
    return frame


def load_calls(since: str | timedelta | None = "7d", experiment: str | None = None) -> "pd.DataFrame":
    """One row per model call, oldest first, read from MLflow after flushing the spool.

    A single run is one call; a batch run gives one call per data row from its ``results.csv``, stamped
    with the batch's start time. Cached rows are kept and flagged (``cached``): they cost nothing and
    are left out of latency percentiles. Columns::

        ts (UTC), run_id, kind, experiment, notebook, model, prompt (name@version), latency_ms,
        prompt_tokens, completion_tokens, cost_usd (NaN: price unknown or failed), error (bool),
        cached (bool), output_chars, retries, run_rows_per_s (the batch run's rows/s; NaN for single
        calls), score.<name> (one per scorer of any batch; NaN elsewhere)

    >>> calls = load_calls("2w", experiment="notebooks/03_nightly_eval")                 # doctest: +SKIP
    >>> calls.groupby("prompt")["output_chars"].median()                                 # doctest: +SKIP

    ``since``: "30m", "12h", "7d", "2w", a timedelta, or None for everything (bad value: ConfigError).
    ``experiment=None``: every experiment that has llmops runs (unknown name: ConfigError).
    """
    import pandas as pd

    runs, experiments, client = _fetch_runs(since, experiment, CALL_KINDS, None, flush=True)
    runs = [r for r in runs if r.info.status in ("FINISHED", "FAILED")]  # a RUNNING run is being (re)written
    singles = [r for r in runs if r.data.tags.get("llmops.kind") == "single"]
    frames: list[pd.DataFrame] = []
    if singles:
        def one(run: Any) -> dict[str, Any]:
            return _single_call(client, run, experiments)

        if all(_is_local(r.info.artifact_uri) for r in singles):
            frames.append(pd.DataFrame([one(r) for r in singles]))
        else:  # one small download per run from a server: in parallel
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=8) as pool:
                frames.append(pd.DataFrame(list(pool.map(one, singles))))
    for run in runs:
        if run.data.tags.get("llmops.kind") in BATCH_KINDS:
            frame = _batch_calls(client, run, experiments)
            if frame is not None and len(frame):
                frames.append(frame)
    return _calls_frame(frames)


def _calls_frame(frames: list["pd.DataFrame"]) -> "pd.DataFrame":
    import pandas as pd

    calls = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CALL_COLUMNS)
    for column in CALL_COLUMNS:
        if column not in calls:
            calls[column] = math.nan
    calls["ts"] = pd.to_datetime(calls["ts"], unit="ms", utc=True)
    for column in ("error", "cached"):
        calls[column] = calls[column].fillna(False).astype(bool)
    for column in ("latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "output_chars", "retries",
                   "run_rows_per_s"):
        calls[column] = calls[column].astype(float)
    scores = sorted(c for c in calls.columns if str(c).startswith("score."))
    calls = calls[CALL_COLUMNS + scores]
    return calls.sort_values("ts", kind="stable").reset_index(drop=True)


# -- summaries (pure) ---------------------------------------------------------------------------------

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


# -- drift (pure) -------------------------------------------------------------------------------------

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


# -- plots ---------------------------------------------------------------------------------------------

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


# -- all together ---------------------------------------------------------------------------------------

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
