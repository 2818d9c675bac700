"""Runs of an experiment for the panel: a page of rows, one run in detail, a comparison of a few runs.

Plain dicts out, validation before any MLflow call; paging and sorting are MLflow's own
(``search_runs(max_results, page_token, order_by)``), so a page costs the same with 10 or 10,000 runs.
The reading itself is :mod:`llmops_lab.tracking.reader`'s (rows, artifacts) and :mod:`llmops_lab.tracking.traces`' (spans).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from llmops_lab.core.records import RESULT_COLUMNS
from llmops_lab.server import conversations
from llmops_lab.server.errors import ApiError
from llmops_lab.server.stores import Store, experiment_id, refresh_planner_stats
from llmops_lab.tracking import reader, traces
from llmops_lab.tracking import tags as T
from llmops_lab.tracking.reader import run_row  # noqa: F401 - the panel's RunRow schema lives with the reader

MAX_RESULTS = 500
DEFAULT_RESULTS = 50
ORDER_KEYS = {"start_time": "attributes.start_time", "latency_ms": "metrics.latency_ms",
              "cost_usd": "metrics.cost_usd", "total_tokens": "metrics.total_tokens"}
DEFAULT_ORDER = "start_time DESC"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_TOKEN = re.compile(r"^[A-Za-z0-9+/=_-]{1,512}$")
MAX_TEXT = 100_000  # characters of prompt/output text in a detail (the panel shows, MLflow keeps the rest)
MAX_TRACES = 20  # traces read per run detail (a batch run has one per sampled row)
MAX_SPANS = 100
MAX_ATTRIBUTE = 1_000  # characters of one span attribute's JSON
TAG_PREFIXES = ("llmops.", "mlflow.source.")
MAX_ROWS = 20  # rows of a batch run's results table in its detail
MAX_CELL = 500  # characters of one cell of those rows
_SPAN_SKIP = ("mlflow.spanInputs", "mlflow.spanOutputs")  # the prompt/output texts are shown already


# -- request checks (pure) -----------------------------------------------------------------------------

def parse_max_results(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_RESULTS
    if not value.isdigit() or not 1 <= int(value) <= MAX_RESULTS:
        raise ApiError(400, f"max_results={value!r} is invalid: use a whole number from 1 to {MAX_RESULTS}")
    return int(value)


def parse_order_by(value: str | None) -> str:
    """``latency_ms ASC`` -> ``metrics.latency_ms ASC``; only the columns the panel sorts on."""
    words = (value or DEFAULT_ORDER).split()
    key, direction = (words + ["DESC"])[:2] if len(words) in (1, 2) else ("", "")
    if key not in ORDER_KEYS or direction.upper() not in ("ASC", "DESC"):
        raise ApiError(400, f"order_by={value!r} is invalid: use one of {', '.join(ORDER_KEYS)}, "
                            "optionally followed by ASC or DESC")
    return f"{ORDER_KEYS[key]} {direction.upper()}"


def check_page_token(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _TOKEN.match(value):
        raise ApiError(400, "page_token is malformed: pass back the next_page_token of the previous page")
    return value


def check_run_id(value: str) -> str:
    if not isinstance(value, str) or not RUN_ID.match(value):
        raise ApiError(400, f"run id {str(value)[:40]!r} is invalid: a run id is 32 hexadecimal characters")
    return value


def parse_run_ids(value: str | None) -> list[str]:
    ids = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not 2 <= len(ids) <= 6:
        raise ApiError(400, "run_ids needs 2 to 6 run ids separated by commas")
    if len(set(ids)) != len(ids):
        raise ApiError(400, "run_ids lists a run twice")
    return [check_run_id(v) for v in ids]


# -- rows -----------------------------------------------------------------------------------------------

_number = reader.number
_count = reader.count


def list_runs(store: Store, *, experiment: str | None = None, max_results: int = DEFAULT_RESULTS,
              page_token: str | None = None, order_by: str = "attributes.start_time DESC") -> dict[str, Any]:
    """One page of the experiment's runs (``order_by`` already checked by :func:`parse_order_by`)."""
    name = experiment or store.experiment
    client = store.client()
    exp_id = experiment_id(store, client, name)
    if exp_id is None:
        return {"experiment": name, "experiment_id": None, "runs": [], "next_page_token": None}
    if order_by.startswith("metrics."):
        refresh_planner_stats(store)
    page, token = reader.runs_page(client, exp_id, max_results=max_results, page_token_=page_token,
                                   order_by=order_by)
    return {"experiment": name, "experiment_id": exp_id, "runs": [run_row(r) for r in page],
            "next_page_token": token}


# -- detail ---------------------------------------------------------------------------------------------

def _text(client: Any, run: Any, path: str) -> str | None:
    try:
        text = reader.artifact_text(client, run, path)
    except (OSError, UnicodeDecodeError):
        return None
    return text if text is None or len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n… (truncated)"


def _attribute(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        return value if not isinstance(value, float) or math.isfinite(value) else None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_ATTRIBUTE else text[:MAX_ATTRIBUTE] + "…"


def _spans(client: Any, run: Any) -> list[dict[str, Any]]:
    return [{"trace_id": span["trace_id"], "name": span["name"], "span_type": span["span_type"],
             "start_ms": span["start_ns"] // 1_000_000 if span["start_ns"] else None,
             "end_ms": span["end_ns"] // 1_000_000 if span["end_ns"] else None,
             "status": span["status"],
             "attributes": {k: _attribute(v) for k, v in span["attributes"].items() if k not in _SPAN_SKIP}}
            for span in traces.span_dicts(traces.traces(client, run, MAX_TRACES), MAX_SPANS)]


def _get_run(client: Any, run_id: str) -> Any:
    if client is None:
        raise ApiError(404, f"run {run_id} not found: this project has no MLflow store yet")
    run = reader.get_run(client, run_id)
    if run is None:
        raise ApiError(404, f"run {run_id} not found in this project's store")
    return run


def _cell(value: str) -> str:
    return value if len(value) <= MAX_CELL else value[:MAX_CELL - 1] + "…"


def _first_rows(path: Path, limit: int) -> tuple[list[str], list[list[str]], bool]:
    """Header and the first ``limit`` rows of a CSV file, read as a stream (a batch may have 100,000 rows);
    the flag says whether more rows follow."""
    import csv

    csv.field_size_limit(16 * 1024 * 1024)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows = []
        for row in reader:
            if len(rows) == limit:
                return header, rows, True
            rows.append(row)
    return header, rows, False


def batch_rows(client: Any, run: Any, limit: int = MAX_ROWS) -> dict[str, Any] | None:
    """The first rows of a batch run's ``results.csv``: its input columns, ``output``, the scores (and
    ``error`` when a row failed), each cell at most MAX_CELL characters; None without the artifact."""
    try:
        found = reader.with_artifact(client, run, "results.csv", lambda path: _first_rows(path, limit))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if found is None:
        return None
    header, rows, more = found
    scores = {k[len(T.SCORE):] for k in run.data.metrics if k.startswith(T.SCORE)}
    score_columns = [c for c in header if c in scores]
    inputs = [c for c in header if c not in RESULT_COLUMNS and c not in scores and not c.endswith("_rationale")]
    index = {c: i for i, c in enumerate(header)}
    failed = "error" in index and any(len(r) > index["error"] and r[index["error"]].strip() for r in rows)
    columns = inputs + (["output"] if "output" in index else []) + score_columns + (["error"] if failed else [])
    total = _count(run.data.metrics.get("rows"))
    return {"columns": columns, "score_columns": score_columns,
            "rows": [[_cell(r[index[c]]) if index[c] < len(r) else "" for c in columns] for r in rows],
            "total": total if total is not None else len(rows) + (1 if more else 0), "truncated": more}


def run_detail(store: Store, run_id: str, client: Any = None) -> dict[str, Any]:
    """RunRow + params, metrics, llmops/source tags, prompt and output texts, trace spans; a batch run's
    first result rows; a conversation turn's conversation (its turns in order)."""
    check_run_id(run_id)
    client = client or store.client()
    run = _get_run(client, run_id)
    facts = reader.run_facts(run)
    tags = {k: v for k, v in facts["tags"].items() if k.startswith(TAG_PREFIXES)}
    return {**run_row(run), "experiment_id": facts["experiment_id"], "end_time": facts["end_time"],
            "params": facts["params"], "metrics": {k: _number(v) for k, v in facts["metrics"].items()},
            "tags": tags, "prompt_text": _text(client, run, "prompt.txt"),
            "output_text": _text(client, run, "output.md"), "spans": _spans(client, run),
            "results": batch_rows(client, run) if tags.get(T.KIND) in (T.BATCH, T.SERVE) else None,
            "conversation": conversations.of_run(client, run)}


def compare_runs(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """Details of 2–6 runs, the union of their metric names and each later output's word diff vs the first."""
    from llmops_lab.evaluation.compare import word_diff

    client = store.client()
    details = [run_detail(store, run_id, client) for run_id in run_ids]
    baseline = details[0]
    diffs = {d["run_id"]: [list(pair) for pair in word_diff(baseline["output_text"], d["output_text"])]
             for d in details[1:]}
    metrics = sorted({name for d in details for name in d["metrics"]})
    return {"runs": details, "baseline": baseline["run_id"], "diffs": diffs, "metrics": metrics}
