"""The one MLflow reader: paging, the run -> row schema, artifacts and traces.

Everything in llmops-lab that reads MLflow goes through here: monitoring (``load_runs`` / ``load_calls`` /
``recent_runs``), audit, ``%llm trace`` (debug), the day's spend (budget), jobs (batch stats, baseline
runs, the report's worst rows), compare (row traces, human ratings) and the server's panel. MLflow is
imported inside the functions, never at module load.

* **Clients** come from :mod:`llmops_lab.tracking.clients` (one per URI, shared by the kernel and the server).
* **Rows.** :func:`runs_frame` (one row per run, ``load_runs``), :func:`calls_frame` (one row per call,
  ``load_calls``), :func:`run_row` (the panel's RunRow) and :func:`run_facts` (one run in detail) are
  the shapes runs are read into; the tag names come from :mod:`llmops_lab.tracking.tags`.
"""
from __future__ import annotations

import math
import os
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from llmops_lab.core.durations import parse_since
from llmops_lab.exceptions import ConfigError
from llmops_lab.tracking import tags as T
from llmops_lab.tracking.clients import kernel_client

if TYPE_CHECKING:
    import pandas as pd


# Traces are exported synchronously so "logged" means logged (the writer is off the critical path). Set before
# this package first imports MLflow, whichever module that is (as tracking/mlflow_sink.py always did).
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")

BATCH_KINDS = (T.BATCH, T.SERVE)  # runs whose calls are the rows of their results.csv (serve: a window of requests)
SINGLE_KINDS = (T.SINGLE,)  # runs that are one call each
CALL_KINDS = (*SINGLE_KINDS, *BATCH_KINDS)  # run kinds made of model calls (job runs hold notebook metrics, not calls)
CALL_COLUMNS = ["ts", "run_id", "kind", "experiment", "notebook", "model", "prompt", "latency_ms",
                "prompt_tokens", "completion_tokens", "cost_usd", "error", "cached", "output_chars", "retries",
                "run_rows_per_s"]
FIXED_RUN_COLUMNS = ["run_id", "ts", "end", "status", "kind", "experiment", "notebook", "model", "model_name",
                     "prompt", "user", "error"]
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")

# -- runs ---------------------------------------------------------------------------------------------------

def is_not_found(err: BaseException) -> bool:
    """An MLflow error that says the thing asked for does not exist."""
    return getattr(err, "error_code", None) in NOT_FOUND_CODES


def get_run(client: Any, run_id: str, *, any_error: bool = False, deleted: bool = False) -> Any | None:
    """The run, or None when the store has no such run (or it is deleted, unless ``deleted``). Other store
    errors are raised, unless ``any_error`` (then None too: a malformed id, say)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if not any_error and not is_not_found(err):
            raise
        return None
    if run is None or (not deleted and run.info.lifecycle_stage == "deleted"):
        return None
    return run


def run_metrics(client: Any, run_id: str) -> dict[str, float] | None:
    """A run's metrics (latest values), None when it cannot be read."""
    try:
        run = client.get_run(run_id)
    except Exception:  # noqa: BLE001 - unknown run, malformed id, store down: the caller says "not found"
        return None
    return dict(run.data.metrics) if run is not None else None


def experiment_id(client: Any, name: str) -> str | None:
    """The id of experiment ``name``, None when it does not exist (reading never creates one)."""
    if client is None:
        return None
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else None


# -- paging -----------------------------------------------------------------------------------------------

def paged(fetch: Callable[[Any, int], Any], limit: int | None = None, page_size: int = 1000) -> list:
    """Every item of a paged MLflow search (``fetch(page_token, max_results)``), at most ``limit``."""
    items: list = []
    token = None
    while True:
        page = fetch(token, page_size if limit is None else min(page_size, limit - len(items)))
        items.extend(page)
        token = getattr(page, "token", None)
        if not token or (limit is not None and len(items) >= limit):
            return items


def page_token(page: Any) -> str | None:
    """A page's next token as text (the sqlite store gives bytes), None on the last page."""
    token = getattr(page, "token", None)
    token = token.decode("ascii") if isinstance(token, bytes) else token
    return token or None


def experiments(client: Any, experiment: str | None = None, missing_ok: bool = False) -> dict[str, str]:
    """{experiment_id: name}: the named experiment, or every active one."""
    if experiment is None:
        found = paged(lambda token, n: client.search_experiments(max_results=n, page_token=token))
        return {e.experiment_id: e.name for e in found}
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return {exp.experiment_id: exp.name}
    if missing_ok:
        return {}
    names = sorted(e.name for e in paged(lambda token, n: client.search_experiments(max_results=n,
                                                                                     page_token=token)))
    shown = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
    raise ConfigError(f"experiment {experiment!r} not found; the store has: {shown or 'no experiments yet'}")


def search_runs(client: Any, experiment_ids: Iterable[str], filter_string: str = "", *,
                order_by: str = "attributes.start_time DESC", limit: int | None = None,
                page_size: int = 1000) -> list:
    """Every run matching ``filter_string`` (paged through), at most ``limit``."""
    ids = list(experiment_ids)
    return paged(lambda token, n: client.search_runs(ids, filter_string, max_results=n, page_token=token,
                                                     order_by=[order_by]), limit, page_size)


def runs_page(client: Any, experiment_id_: str, *, max_results: int, page_token_: str | None,
              order_by: str) -> tuple[list, str | None]:
    """One page of an experiment's runs (MLflow's own paging and sorting) and the next page's token."""
    page = client.search_runs([experiment_id_], "", max_results=max_results, page_token=page_token_,
                              order_by=[order_by])
    return list(page), page_token(page)


def batch_runs_between(client: Any, experiment_id_: str, start_ms: int, end_ms: int, notebook: str,
                       limit: int = 200, kind: str = T.BATCH) -> list:
    """Batch runs (or runs of another ``kind``: ``probe``) of ``notebook`` started in ``[start_ms, end_ms]``,
    oldest first (a job's window)."""
    runs = client.search_runs(
        [experiment_id_], max_results=limit, order_by=["attributes.start_time ASC"],
        filter_string=f"{T.tag_filter(T.KIND, kind)} and attributes.start_time >= {start_ms}")
    return [r for r in runs if r.info.start_time <= end_ms and r.data.tags.get(T.NOTEBOOK) == notebook]


# -- conversations -----------------------------------------------------------------------------------------

def conversation_turns(*, name: str | None = None, conversation_id: str | None = None,
                       experiment: str | None = None) -> dict[str, Any] | None:
    """A conversation rebuilt from its runs (after a flush): ``{"id", "name", "model", "system", "parent",
    "turns": [{"turn", "user", "assistant", "run_id"}]}``, oldest turn first; None when no turn is logged.

    By ``name``: its newest conversation id in ``experiment`` (default: this notebook's), since a reset starts a
    new id under the same name; or by ``conversation_id``. Only answered turns count (a failed or interrupted
    turn was not added to the conversation either); a turn logged twice keeps its latest answer. The text is
    what was stored: masked."""
    import json

    from llmops_lab.config import get_settings
    from llmops_lab.tracking import context

    _flush(10.0)
    client = kernel_client()
    found = experiments(client, experiment or context.experiment_name(get_settings(), context.notebook_path()),
                        missing_ok=True)
    tag, value = (T.CONVERSATION, conversation_id) if conversation_id else (T.CONVERSATION_NAME, name)
    runs = [r for r in search_runs(client, found, T.tag_filter(tag, value), order_by="attributes.start_time ASC")
            if r.info.status == "FINISHED"] if found else []
    if not runs:
        return None
    newest_id = runs[-1].data.tags[T.CONVERSATION]
    by_turn = {int(r.data.tags[T.TURN]): r for r in runs if r.data.tags[T.CONVERSATION] == newest_id}
    turns, sent = [], []
    for number in sorted(by_turn):
        run = by_turn[number]
        sent = json.loads(artifact_text(client, run, T.MESSAGES_ARTIFACT) or "[]")
        turns.append({"turn": number, "user": sent[-1]["content"] if sent else "",
                      "assistant": artifact_text(client, run, T.OUTPUT_ARTIFACT) or "", "run_id": run.info.run_id})
    last = by_turn[max(by_turn)]  # its messages (sent) hold the conversation's current system message
    parent_id, _, copied = (last.data.tags.get(T.CONVERSATION_PARENT) or "").partition(":")
    return {"id": newest_id, "name": last.data.tags.get(T.CONVERSATION_NAME), "model": last.data.tags.get(T.MODEL),
            "system": sent[0]["content"] if sent and sent[0]["role"] == "system" else None,
            "parent": {"id": parent_id, "turns": int(copied)} if parent_id else None, "turns": turns}


# -- monitoring reads ----------------------------------------------------------------------------------

def _flush(timeout: float = 30.0) -> None:
    from llmops_lab.tracking import flush

    left = flush(timeout)
    if left:
        warnings.warn(f"{left} tracked call(s) are still in the spool (MLflow unreachable?) and are not counted",
                      stacklevel=3)


def fetch_runs(since: str | timedelta | None, experiment: str | None, kinds: Iterable[str] | None,
               limit: int | None, flush: bool | float, missing_ok: bool = False) -> tuple[list, dict[str, str], Any]:
    """(runs newest first, {experiment_id: name}, client) of the kernel's store, after a flush."""
    delta = parse_since(since)  # a bad value fails before any I/O
    if flush:
        _flush(30.0 if flush is True else float(flush))
    client = kernel_client()
    found = experiments(client, experiment, missing_ok)
    if not found:
        return [], found, client
    where = ""
    if delta is not None:
        cutoff = datetime.now(timezone.utc) - delta
        where = f"attributes.start_time >= {int(cutoff.timestamp() * 1000)}"
    runs = search_runs(client, found, where, limit=limit if kinds is None else None)
    if kinds is not None:
        wanted = set(kinds)
        runs = [r for r in runs if r.data.tags.get(T.KIND) in wanted]
    return (runs[:limit] if limit is not None else runs), found, client


def load_runs(since: str | timedelta | None = "7d", experiment: str | None = None, *,
              kinds: Iterable[str] | None = None, limit: int | None = None, flush: bool = True) -> "pd.DataFrame":
    """One row per MLflow run, newest first: who/what/when columns then every metric of the run.

    Columns: ``run_id, ts`` (start, UTC), ``end, status, kind, experiment, notebook, model`` (provider:model),
    ``model_name`` (the ``model`` param), ``prompt`` (name@version), ``user, error`` (message), then the
    run's metrics (``latency_ms``, ``cost_usd``, ``rows_per_s``, ``score.<name>``, ...).

    >>> load_runs("2w", kinds=["batch"])[["ts", "prompt", "rows", "latency_p95_ms"]]     # doctest: +SKIP

    ``experiment=None``: every experiment of the store. ``kinds``: keep only these ``llmops.kind`` values.
    """
    runs, found, _ = fetch_runs(since, experiment, kinds, limit, flush)
    return runs_frame(runs, found)


def runs_frame(runs: list, experiments_: dict[str, str]) -> "pd.DataFrame":
    """The run -> row schema of :func:`load_runs`."""
    import pandas as pd

    rows = []
    for run in runs:
        tags, info = run.data.tags, run.info
        row = {"run_id": info.run_id, "ts": info.start_time, "end": info.end_time, "status": info.status,
               "kind": tags.get(T.KIND), "experiment": experiments_.get(info.experiment_id),
               "notebook": tags.get(T.NOTEBOOK), "model": tags.get(T.MODEL),
               "model_name": run.data.params.get("model"), "prompt": tags.get(T.PROMPT),
               "user": tags.get(T.USER), "error": tags.get(T.ERROR)}
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
    runs, found, _ = fetch_runs(None, name, None, limit, flush=10.0, missing_ok=True)
    frame = runs_frame(runs, found)
    columns = ["run_id", "start", "prompt", "model", "latency_ms", "total_tokens", "cost_usd", "status", "kind"]
    out = pd.DataFrame({
        "run_id": frame["run_id"], "start": frame["ts"].dt.tz_localize(None), "prompt": frame["prompt"],
        "model": frame["model_name"], "latency_ms": frame.get("latency_ms"),
        "total_tokens": frame.get("total_tokens"), "cost_usd": frame.get("cost_usd"),
        "status": frame["status"], "kind": frame["kind"]}, columns=columns)
    return out.reset_index(drop=True)


def spent_since(delta: timedelta) -> float:
    """USD of every run started in the last ``delta`` in the kernel's store (after a flush), judge calls included."""
    runs = load_runs(since=delta)
    # A batch's judge calls are logged apart from its rows' cost (judge_cost_usd); both were spent.
    return sum(float(runs[column].fillna(0).sum()) for column in ("cost_usd", "judge_cost_usd")
               if column in runs.columns)


# -- artifacts ----------------------------------------------------------------------------------------------

def is_local(uri: str | None) -> bool:
    from urllib.parse import urlparse

    return urlparse(uri or "").scheme in ("", "file")


def _local_artifact(run: Any, path: str) -> Path | None:
    """The artifact's path on a local store (it may not exist), None on a remote store."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    uri = run.info.artifact_uri or ""
    if not is_local(uri):
        return None
    parsed = urlparse(uri)
    return Path(url2pathname(parsed.path) if parsed.scheme else uri) / path


def artifact_text(client: Any, run: Any, path: str) -> str | None:
    """A run's text artifact: read in place on a local store, downloaded otherwise; None when absent."""
    import tempfile

    local = _local_artifact(run, path)
    if local is not None:
        return local.read_text(encoding="utf-8") if local.is_file() else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(client.download_artifacts(run.info.run_id, path, tmp)).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - missing artifact on a remote store
        return None


def with_artifact(client: Any, run: Any, path: str, read: Callable[[Path], Any]) -> Any:
    """``read(local path)`` of a run's artifact (in place on a local store, downloaded to a temporary folder
    otherwise); None when the artifact is absent."""
    import tempfile

    local = _local_artifact(run, path)
    if local is not None:
        return read(local) if local.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(client.download_artifacts(run.info.run_id, path, tmp))
        except Exception:  # noqa: BLE001 - no such artifact on a remote store
            return None
        return read(local)


def results_table(uri: str, run_id: str) -> tuple[Any, list[str], "pd.DataFrame"]:
    """(run, score names, the batch run's ``results.json`` table) — downloaded, as MLflow logged it."""
    import tempfile

    import pandas as pd

    client = kernel_client(uri)
    run = client.get_run(run_id)
    scores = [k[len(T.SCORE):] for k in run.data.metrics if k.startswith(T.SCORE)]
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, "results.json", tmp)
        table = pd.read_json(path, orient="split")
    return run, scores, table


# -- calls (monitoring) ---------------------------------------------------------------------------------------

def _base(run: Any, experiments_: dict[str, str]) -> dict[str, Any]:
    tags = run.data.tags
    return {"run_id": run.info.run_id, "kind": tags.get(T.KIND),
            "experiment": experiments_.get(run.info.experiment_id), "notebook": tags.get(T.NOTEBOOK),
            "model": tags.get(T.MODEL), "prompt": tags.get(T.PROMPT)}


def _single_call(client: Any, run: Any, experiments_: dict[str, str]) -> dict[str, Any]:
    metrics = run.data.metrics
    failed = run.info.status == "FAILED" or T.ERROR in run.data.tags
    output = None if failed else artifact_text(client, run, "output.md")
    return {"ts": run.info.start_time, **_base(run, experiments_),
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


def _batch_calls(client: Any, run: Any, experiments_: dict[str, str]) -> "pd.DataFrame | None":
    import io

    import pandas as pd

    text = artifact_text(client, run, "results.csv")
    if text is None:
        warnings.warn(f"batch run {run.info.run_id} has no results.csv; its rows are not counted", stacklevel=4)
        return None
    scores = [k[len(T.SCORE):] for k in run.data.metrics if k.startswith(T.SCORE)]
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
    for key, value in _base(run, experiments_).items():
        frame[key] = value
    frame["ts"] = run.info.start_time
    frame["run_rows_per_s"] = run.data.metrics.get("rows_per_s", math.nan)
    for name in scores:
        frame[f"{T.SCORE}{name}"] = _numbers(table[name]) if name in table else math.nan
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

    runs, found, client = fetch_runs(since, experiment, CALL_KINDS, None, flush=True)
    # a RUNNING run is being (re)written; KILLED: a call whose stream was interrupted (its tokens were paid for)
    runs = [r for r in runs if r.info.status in ("FINISHED", "FAILED", "KILLED")]
    singles = [r for r in runs if r.data.tags.get(T.KIND) in SINGLE_KINDS]
    frames: list[pd.DataFrame] = []
    if singles:
        def one(run: Any) -> dict[str, Any]:
            return _single_call(client, run, found)

        if all(is_local(r.info.artifact_uri) for r in singles):
            frames.append(pd.DataFrame([one(r) for r in singles]))
        else:  # one small download per run from a server: in parallel
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=8) as pool:
                frames.append(pd.DataFrame(list(pool.map(one, singles))))
    for run in runs:
        if run.data.tags.get(T.KIND) in BATCH_KINDS:
            frame = _batch_calls(client, run, found)
            if frame is not None and len(frame):
                frames.append(frame)
    return calls_frame(frames)


def calls_frame(frames: list["pd.DataFrame"]) -> "pd.DataFrame":
    """The calls schema of :func:`load_calls` (CALL_COLUMNS + score columns), oldest first."""
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
    scores = sorted(c for c in calls.columns if str(c).startswith(T.SCORE))
    calls = calls[CALL_COLUMNS + scores]
    return calls.sort_values("ts", kind="stable").reset_index(drop=True)


# -- audit ------------------------------------------------------------------------------------------------------

def audit_rows(start: datetime | None, end: datetime | None, user: str | None, limit: int,
               tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """llmops-lab runs (those with a kind tag) started in ``[start, end)``, newest first, as plain rows:
    time (ms), user, kind, status, experiment, notebook, git_commit, model, prompt, dataset_digest,
    redaction, run_id."""
    client = kernel_client(tracking_uri)
    found = {e.experiment_id: e.name for e in client.search_experiments(max_results=10_000)}
    filters = []
    if start is not None:
        filters.append(f"attributes.start_time >= {int(start.timestamp() * 1000)}")
    if end is not None:
        filters.append(f"attributes.start_time < {int(end.timestamp() * 1000)}")
    if user:
        filters.append(T.tag_filter(T.USER, user))
    rows: list[dict[str, Any]] = []
    if found:
        token = None
        while len(rows) < limit:
            page = client.search_runs(list(found), " AND ".join(filters), max_results=min(1000, limit),
                                      order_by=["attributes.start_time DESC"], page_token=token)
            for run in page:
                tags = run.data.tags
                if T.KIND not in tags:
                    continue  # not one of ours
                rows.append({
                    "time": run.info.start_time,
                    "user": tags.get(T.USER), "kind": tags.get(T.KIND), "status": run.info.status,
                    "experiment": found.get(run.info.experiment_id), "notebook": tags.get(T.NOTEBOOK),
                    "git_commit": tags.get(T.GIT_COMMIT), "model": tags.get(T.MODEL),
                    "prompt": tags.get(T.PROMPT), "dataset_digest": run.data.params.get(T.DATASET_DIGEST),
                    "redaction": tags.get(T.REDACTION), "run_id": run.info.run_id})
            token = page.token
            if not token:
                break
    return rows[:limit]


# -- one run: the panel's row, its detail, traces ------------------------------------------------------------

# metrics every run kind logs: left out of a job run's highlights (its notebook's own metrics come first)
_STANDARD_METRICS = ("latency_ms", "total_tokens", "cost_usd", "prompt_tokens", "completion_tokens",
                     "duration_s", "attempts")


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def count(value: Any) -> int | None:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return None
    return int(n) if math.isfinite(n) and n >= 0 else None


def run_row(run: Any) -> dict[str, Any]:
    """The panel's RunRow of an MLflow run (``docs/server-api.md``)."""
    tags, metrics, info = run.data.tags, run.data.metrics, run.info
    scores = sorted(k for k in metrics if k.startswith(T.SCORE))
    error = tags.get(T.ERROR)
    return {
        "run_id": info.run_id, "name": info.run_name, "kind": tags.get(T.KIND), "status": info.status,
        "start_time": info.start_time, "model": tags.get(T.MODEL) or run.data.params.get("model"),
        "prompt": tags.get(T.PROMPT), "latency_ms": number(metrics.get("latency_ms")),
        "total_tokens": number(metrics.get("total_tokens")), "cost_usd": number(metrics.get("cost_usd")),
        "score": {"name": scores[0][len(T.SCORE):], "value": number(metrics[scores[0]])} if scores else None,
        "notebook": tags.get(T.NOTEBOOK),
        "error": error.strip().splitlines()[0][:500] if error and error.strip() else None,
        "conversation_name": tags.get(T.CONVERSATION_NAME), "turn": count(tags.get(T.TURN)),  # a chat turn's badge
        **_highlights(run),
    }


def _highlights(run: Any) -> dict[str, Any]:
    """What a run that is not one call has instead of model/latency/tokens: a job its notebook's metrics and
    duration, a comparison its variant and row counts, a batch its row count."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    kind = tags.get(T.KIND)
    out: dict[str, Any] = {"job": None, "job_metrics": None, "duration_s": None, "variants": None, "rows": None}
    if kind == T.JOB:
        own = {k: number(v) for k, v in sorted(metrics.items()) if k not in _STANDARD_METRICS}
        out.update(job=tags.get(T.JOB_NAME), job_metrics=dict(list(own.items())[:3]),
                   duration_s=number(metrics.get("duration_s")))
    elif kind == T.COMPARE:
        out.update(variants=count(params.get("variants")), rows=count(params.get("rows")))
    elif kind in BATCH_KINDS:
        out.update(rows=count(metrics.get("rows")))
    return out


def run_facts(run: Any) -> dict[str, Any]:
    """Who/what of one run as plain values: the llmops tags by name, params, metrics, tags."""
    tags = run.data.tags
    return {"run_id": run.info.run_id, "status": run.info.status, "kind": tags.get(T.KIND),
            "model": tags.get(T.MODEL), "prompt": tags.get(T.PROMPT), "notebook": tags.get(T.NOTEBOOK),
            "user": tags.get(T.USER), "git_commit": tags.get(T.GIT_COMMIT), "error": tags.get(T.ERROR),
            "experiment_id": run.info.experiment_id, "end_time": run.info.end_time,
            "params": dict(run.data.params), "metrics": dict(run.data.metrics), "tags": dict(tags)}
