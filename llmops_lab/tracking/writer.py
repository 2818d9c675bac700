"""MLflow writes that are not call records: experiments, compare parent runs, human feedback, run tags, job runs.

Call records (single, batch rows, batch) go through the spool to :class:`~llmops_lab.tracking.mlflow_sink.MlflowSink`;
everything else llmops-lab writes to MLflow goes through the functions here, with the tag names of
:mod:`llmops_lab.tracking.tags`. Prompt versions and aliases are :mod:`llmops_lab.tracking.registry`'s.
MLflow is imported inside the functions.
"""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from llmops_lab.tracking import tags as T
from llmops_lab.tracking.clients import ensure_store, kernel_client

if TYPE_CHECKING:
    from llmops_lab.config import Settings

MAX_PARAM = 6000  # characters of a param value
MAX_TAG = 5000  # characters of a tag value
METRICS_PER_BATCH = 900  # under MLflow's 1,000 per log_batch


def slug(name: str) -> str:
    """An experiment name as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "default"


def experiment_id(client: Any, uri: str, name: str, settings: "Settings",
                  cache: dict[tuple[str, str], str] | None = None) -> str:
    """The id of experiment ``name``, created if needed; on sqlite its artifacts go beside the store
    (``<home>/artifacts/<slug>``), not into the kernel's cwd. ``cache``: (uri, name) -> id, kept by the caller."""
    key = (uri, name)
    if cache is not None and key in cache:
        return cache[key]
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:"):
            location = (settings.home / "artifacts" / slug(name)).resolve().as_uri()
        try:
            exp_id = client.create_experiment(name, artifact_location=location)
        except Exception:  # noqa: BLE001 - created meanwhile by another process (or the kernel's writer)
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
    if cache is not None:
        cache[key] = exp_id
    return exp_id


def notebook_tags(notebook: str | None) -> dict[str, str]:
    """The notebook tags of a run (llmops and MLflow's source tags); none without a notebook."""
    if not notebook:
        return {}
    return {T.NOTEBOOK: notebook, T.SOURCE_NAME: notebook, T.SOURCE_TYPE: T.NOTEBOOK_SOURCE}


def user_tags(user: str) -> dict[str, str]:
    return {T.USER: user, T.MLFLOW_USER: user}


def _metrics(values: Mapping[str, float], ts_ms: int) -> list:
    from mlflow.entities import Metric

    return [Metric(k, float(v), ts_ms, 0) for k, v in values.items()]


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(k, str(v)[:MAX_PARAM]) for k, v in values.items()]


# -- one-off tags and feedback -----------------------------------------------------------------------------

def set_run_tag(run_id: str, key: str, value: str, uri: str | None = None) -> None:
    """One tag on a run of the kernel's store (value cut at MLflow's limit)."""
    kernel_client(uri).set_tag(run_id, key, value[:MAX_TAG])


def log_feedback(trace_id: str, name: str, value: Any, *, user: str, rationale: str | None = None,
                 metadata: Mapping[str, str] | None = None, uri: str | None = None) -> None:
    """Human feedback (source HUMAN, ``user``) on a trace: ``mlflow.log_feedback`` on the kernel's store."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    if uri is None:
        from llmops_lab.config import get_settings

        uri = get_settings().resolved_tracking_uri()
    ensure_store(uri)  # the fluent API writes to the process-wide store
    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=user)
    mlflow.log_feedback(trace_id=trace_id, name=name, value=value, source=source, rationale=rationale,
                        metadata=dict(metadata or {}))


# -- compare parent (a spool record of its own) ----------------------------------------------------------

def table_payload(frame: Any) -> dict[str, list]:
    """A DataFrame as ``{"columns", "data"}`` of plain JSON values (numpy scalars unwrapped, NaN -> None), so
    the spooled record and its replay log the same table."""
    import math

    def plain(value: Any) -> Any:
        value = value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value
        return None if isinstance(value, float) and math.isnan(value) else value

    return {"columns": [str(c) for c in frame.columns],
            "data": [[plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]}


def compare_record(*, record_id: str, experiment: str, notebook: str | None, user: str, name: str,
                   started_ms: int, baseline: str, children: Iterable[tuple[str | None, str | None, str]],
                   metrics: Mapping[str, float], params: Mapping[str, str], table: Any,
                   kind: str = T.COMPARE, table_file: str | None = None,
                   tables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The spool record (kind ``compare``, or ``probe`` for a counterfactual probe) of a comparison's parent run. ``children``: (batch record id, run id
    if known, variant label) per variant. Ids, numbers and params travel in ``summary`` (kept as they are by
    redaction); the name, labels and the summary table are content (masked by ``redact_record``).
    ``tables``: more tables to log, by file name (an optimize run's ``split.json``); content too."""
    children = list(children)
    table_file = table_file or ("comparison.json" if kind == T.COMPARE else f"{kind}.json")
    return {"id": record_id, "v": 1, "kind": kind, "experiment": experiment, "notebook": notebook,
            "user": user, "start_ns": started_ms * 1_000_000, "end_ns": time.time_ns(),
            "summary": {"children": [{"record_id": rid, "run_id": run_id} for rid, run_id, _ in children],
                        "metrics": {k: float(v) for k, v in metrics.items()}, "params": dict(params),
                        "table_file": table_file},
            "name": name, "baseline": baseline, "labels": [label for _, _, label in children],
            "table": table_payload(table),
            **({"tables": {k: table_payload(v) for k, v in tables.items()}} if tables else {})}


def _runs_of_record(client: Any, exp_id: str, record_id: str) -> list:
    return list(client.search_runs([exp_id], filter_string=T.tag_filter(T.RECORD_ID, record_id), max_results=5))


def write_compare(record: dict[str, Any], settings: "Settings", replay: bool = False,
                  cache: dict[tuple[str, str], str] | None = None) -> str:
    """Write a compare record: the parent run (kind=compare, tagged with its record id), its variants' batch runs
    made children (``mlflow.parentRunId``, ``llmops.compare.parent``, ``llmops.compare.variant``), metrics,
    params and ``comparison.json``. A child not written yet raises, so the record stays spooled and retries
    (the spool writes in order: its batches come first). With ``replay``, a parent MLflow already has is not
    written again and a half-written one is replaced. Returns the parent's run id."""
    import pandas as pd

    uri = settings.resolved_tracking_uri()
    client = kernel_client(uri)
    exp_id = experiment_id(client, uri, record["experiment"], settings, cache)
    if replay:
        for run in _runs_of_record(client, exp_id, record["id"]):
            if run.info.status in ("FINISHED", "FAILED"):
                return run.info.run_id
            client.delete_run(run.info.run_id)  # interrupted mid-write: write it again whole
    info = record["summary"]
    children = []
    for child, label in zip(info["children"], record["labels"]):
        run_id = child.get("run_id")
        if not run_id and child.get("record_id"):
            found = _runs_of_record(client, exp_id, child["record_id"])
            if not found:
                raise RuntimeError(f"compare {record['id']}: its batch {child['record_id']} is not written yet")
            run_id = found[0].info.run_id
        children.append((run_id, label))
    tags = {T.RECORD_ID: record["id"], T.KIND: record.get("kind", T.COMPARE), **user_tags(record["user"]), T.BASELINE: record["baseline"],
            **notebook_tags(record.get("notebook"))}
    run = client.create_run(exp_id, start_time=record["start_ns"] // 1_000_000, run_name=record["name"], tags=tags)
    parent = run.info.run_id
    for run_id, label in children:
        if run_id:
            client.set_tag(run_id, T.PARENT_RUN_ID, parent)
            client.set_tag(run_id, T.COMPARE_VARIANT, label)
            client.set_tag(run_id, T.COMPARE_PARENT, parent)
    from mlflow.entities import Param

    params = {**info["params"], "baseline": record["baseline"][:500]}
    client.log_batch(parent, metrics=_metrics(info["metrics"], record["end_ns"] // 1_000_000),
                     params=[Param(k, str(v)) for k, v in params.items()])
    table = pd.DataFrame(record["table"]["data"], columns=record["table"]["columns"]).astype(object)
    client.log_table(parent, table.where(table.notna(), None), info.get("table_file", "comparison.json"))
    for file, payload in (record.get("tables") or {}).items():
        extra = pd.DataFrame(payload["data"], columns=payload["columns"]).astype(object)
        client.log_table(parent, extra.where(extra.notna(), None), file)
    client.set_terminated(parent, status="FINISHED")
    return parent


# -- job runs ------------------------------------------------------------------------------------------------

def start_job_run(settings: "Settings", *, experiment: str, name: str, started_ms: int,
                  tags: Mapping[str, str]) -> tuple[Any, str, str]:
    """A RUNNING run (kind=job) in ``experiment`` (created if needed, store migrated once under a lock).
    Returns (client, experiment_id, run_id): the client is the handle the other job functions take."""
    uri = settings.resolved_tracking_uri()
    client = kernel_client(uri)
    exp_id = experiment_id(client, uri, experiment, settings)
    run = client.create_run(exp_id, start_time=started_ms, run_name=name, tags={T.KIND: T.JOB, **tags})
    return client, exp_id, run.info.run_id


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """A run's params in one call (values cut at MLflow's limit)."""
    client.log_batch(run_id, params=_params(params))


def end_job_run(client: Any, run_id: str, *, records: Iterable[dict[str, Any]], stats: Mapping[str, float],
                tags: Mapping[str, str], artifacts: Iterable[str], status: str, artifact_dir: str = "job") -> None:
    """Finish a job run: recorded metrics (``llmops_lab.record``; repeats become steps), the execution's
    numeric stats, final tags, artifacts under ``job/``, and the run status (FINISHED, FAILED or KILLED)."""
    from mlflow.entities import Metric, RunTag

    now_ms = int(time.time() * 1000)
    metrics = []
    steps: dict[str, int] = {}
    for record in records:
        step = record.get("step")
        if step is None:
            step = steps.get(record["name"], 0)
        steps[record["name"]] = step + 1
        metrics.append(Metric(record["name"], record["value"], int(record["ts"] * 1000), step))
    for key, value in stats.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.append(Metric(key, float(value), now_ms, 0))
    run_tags = [RunTag(k, v) for k, v in tags.items()]
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + METRICS_PER_BATCH],
                         tags=run_tags if start == 0 else [])
    if not metrics:
        client.log_batch(run_id, tags=run_tags)
    for path in artifacts:
        client.log_artifact(run_id, path, artifact_dir)
    client.set_terminated(run_id, status, end_time=now_ms)
