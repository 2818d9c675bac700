"""Erasure in MLflow: find runs, traces and prompt versions by what they hold or who made them, and delete
them for good (``llmops-lab forget`` and ``gc``, orchestrated by :mod:`llmops_lab.jobs.erasure`).

>>> client = kernel_client()                                                          # doctest: +SKIP
>>> runs = runs_containing(client, all_runs(client), "ada lovelace")                  # doctest: +SKIP
>>> hard_delete_runs(client, runs)        # (runs, artifact files, hard)              # doctest: +SKIP

MLflow's ``delete_run`` only marks a run deleted; the permanent delete is what ``mlflow gc`` does: the
store's ``_hard_delete_run`` (metrics, params, tags, the run row) and the artifact repository's
``delete_artifacts``. Only a database-backed store has it; through a tracking server (REST) a run can only be
marked deleted, and the report says so (``hard=False``: the server's operator runs ``mlflow gc``).
Deleted rows stay in sqlite's free pages and WAL until :func:`compact_store` vacuums a local sqlite store.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from llmops_lab.tracking import tags as T
from llmops_lab.tracking.reader import is_local, paged

AUDIT_EXPERIMENT = "llmops-erasures"  # where the erasure audit runs (kind ERASURE) go
_MAX_TEXT_BYTES = 20_000_000  # artifacts bigger than this are not read for --contains (binary models and such)


def _all_view() -> Any:
    from mlflow.entities import ViewType

    return ViewType.ALL


def experiment_ids(client: Any) -> list[str]:
    """Every experiment, deleted ones too (a deleted experiment's runs still hold their data)."""
    found = paged(lambda token, n: client.search_experiments(view_type=_all_view(), max_results=n, page_token=token))
    return [e.experiment_id for e in found if e.name != AUDIT_EXPERIMENT]


def all_runs(client: Any) -> list:
    """Every run of every experiment, soft-deleted ones too; never an erasure's audit run."""
    ids = experiment_ids(client)
    if not ids:
        return []
    runs = paged(lambda token, n: client.search_runs(ids, "", run_view_type=_all_view(), max_results=n,
                                                     page_token=token))
    return [r for r in runs if r.data.tags.get(T.KIND) != T.ERASURE]


def runs_of_user(runs: Iterable[Any], user: str) -> list:
    """Runs whose llmops or MLflow user tag is ``user``."""
    return [r for r in runs if user in (r.data.tags.get(T.USER), r.data.tags.get(T.MLFLOW_USER))]


def with_children(runs: Iterable[Any], chosen: Iterable[Any]) -> list:
    """``chosen`` and, transitively, the runs whose parent (``mlflow.parentRunId``) is one of them."""
    runs = list(runs)
    picked = {r.info.run_id: r for r in chosen}
    grew = True
    while grew:
        grew = False
        for run in runs:
            if run.info.run_id not in picked and run.data.tags.get(T.PARENT_RUN_ID) in picked:
                picked[run.info.run_id] = run
                grew = True
    return list(picked.values())


# -- matching text ---------------------------------------------------------------------------------------------

def _folded(value: Any) -> str:
    return (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)).lower()


def local_path(uri: str | None) -> Path | None:
    """A ``file:`` (or plain path) artifact URI as a path; None for a remote one."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    if not uri or not is_local(uri):
        return None
    parsed = urlparse(uri)
    return Path(url2pathname(parsed.path) if parsed.scheme else uri)


def files_under(folder: Path | None) -> Iterator[Path]:
    if folder is not None and folder.is_dir():
        yield from (p for p in sorted(folder.rglob("*")) if p.is_file())


def file_contains(path: Path, needle: str) -> bool:
    """Whether a file's text holds ``needle`` (case-insensitive; ``needle`` already lower-cased)."""
    try:
        if path.stat().st_size > _MAX_TEXT_BYTES:
            return False
        return needle in path.read_bytes().decode("utf-8", errors="replace").lower()
    except OSError:
        return False


def _run_artifacts(client: Any, run: Any) -> Iterator[tuple[str, bytes]]:
    folder = local_path(run.info.artifact_uri)
    if folder is not None:
        for path in files_under(folder):
            if path.stat().st_size <= _MAX_TEXT_BYTES:
                yield str(path), path.read_bytes()
        return
    import tempfile

    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:  # a remote store: read a copy, then drop it
        try:
            root = Path(download_artifacts(run_id=run.info.run_id, dst_path=tmp, tracking_uri=client.tracking_uri))
        except Exception:  # noqa: BLE001 - no artifacts, or none readable: nothing to match
            return
        for path in files_under(root):
            yield str(path), path.read_bytes()


def run_contains(client: Any, run: Any, needle: str) -> bool:
    """``needle`` (lower-cased) in the run's name, params, tags, metric names or text artifacts."""
    data = run.data
    fields = [run.info.run_name or "", *data.params.keys(), *data.params.values(), *data.tags.values(),
              *data.metrics.keys()]
    if any(needle in str(value).lower() for value in fields):
        return True
    return any(needle in blob.decode("utf-8", errors="replace").lower() for _, blob in _run_artifacts(client, run))


def runs_containing(client: Any, runs: Iterable[Any], needle: str) -> list:
    needle = needle.lower()
    return [run for run in runs if run_contains(client, run, needle)]


# -- traces ----------------------------------------------------------------------------------------------------

def _traces(client: Any, exp_ids: list[str], *, spans: bool = False) -> list:
    """Every trace of these experiments; without ``spans`` only their infos (3-5x faster: ids and times suffice)."""
    if not exp_ids:
        return []
    return paged(lambda token, n: client.search_traces(locations=exp_ids, max_results=min(n, 500), page_token=token,
                                                       include_spans=spans), page_size=500)


def trace_run(trace: Any) -> str | None:
    return (trace.info.request_metadata or {}).get(T.SOURCE_RUN)


def trace_location(trace: Any) -> str:
    info = trace.info
    return getattr(info, "experiment_id", None) or info.trace_location.mlflow_experiment.experiment_id


def traces_containing(client: Any, needle: str) -> list:
    """Every trace (any experiment) whose info, tags, spans' inputs, outputs or attributes hold ``needle``."""
    needle = needle.lower()
    return [t for t in _traces(client, experiment_ids(client), spans=True) if needle in _folded(t.to_dict())]


def traces_of_runs(client: Any, runs: Iterable[Any]) -> list:
    """The traces logged in these runs."""
    runs = list(runs)
    if not runs:
        return []
    wanted = {r.info.run_id for r in runs}
    exp_ids = sorted({r.info.experiment_id for r in runs})
    return [t for t in _traces(client, exp_ids) if trace_run(t) in wanted]


def traces_before(client: Any, cutoff_ms: int) -> list:
    return [t for t in _traces(client, experiment_ids(client)) if (t.info.request_time or 0) < cutoff_ms]


def delete_traces(client: Any, traces: Iterable[Any]) -> int:
    """Delete traces (spans, assessments, tags) and, on a local store, their artifact folders."""
    by_exp: dict[str, list[Any]] = {}
    for trace in traces:
        by_exp.setdefault(trace_location(trace), []).append(trace)
    gone = 0
    for exp_id, items in by_exp.items():
        ids = list(dict.fromkeys(t.info.trace_id for t in items))
        for start in range(0, len(ids), 100):
            gone += client.delete_traces(exp_id, trace_ids=ids[start:start + 100])
        root = local_path(client.get_experiment(exp_id).artifact_location)
        for trace_id in ids:
            if root is not None:
                shutil.rmtree(root / "traces" / trace_id, ignore_errors=True)
    return gone


# -- runs ------------------------------------------------------------------------------------------------------

def _store(client: Any) -> Any:
    return client._tracking_client.store


def artifact_files(client: Any, run: Any) -> list[str]:
    """The run's artifact paths (relative), for the report."""
    folder = local_path(run.info.artifact_uri)
    if folder is not None:
        return [str(p.relative_to(folder)) for p in files_under(folder)]
    out: list[str] = []
    stack = [None]
    while stack:
        for item in client.list_artifacts(run.info.run_id, stack.pop()):
            (stack.append(item.path) if item.is_dir else out.append(item.path))
    return out


def hard_delete_runs(client: Any, runs: Iterable[Any]) -> bool:
    """Delete runs for good with their artifacts; True when hard-deleted, False when the store (a tracking
    server) could only mark them deleted."""
    store = _store(client)
    hard = hasattr(store, "_hard_delete_run")
    for run in runs:
        run_id = run.info.run_id
        folder = local_path(run.info.artifact_uri)
        if folder is not None:
            # <root>/<run_id>/artifacts: the run's own folder goes (nothing else lives in it)
            shutil.rmtree(folder.parent if folder.parent.name == run_id else folder, ignore_errors=True)
        else:
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            # a proxied server may refuse: its operator's `mlflow gc` removes them
            with contextlib.suppress(Exception):
                get_artifact_repository(run.info.artifact_uri).delete_artifacts()
        if run.info.lifecycle_stage != "deleted":
            client.delete_run(run_id)
        if hard:
            _delete_run_inputs(store, run_id)
            store._hard_delete_run(run_id)
    return hard


def _delete_run_inputs(store: Any, run_id: str) -> None:
    """The run's dataset inputs (``_hard_delete_run`` leaves them): input rows, their tags, unused datasets."""
    from mlflow.store.tracking.dbmodels.models import SqlDataset, SqlInput, SqlInputTag

    with store.ManagedSessionMaker(read_only=False) as session:
        rows = session.query(SqlInput).filter(SqlInput.destination_type == "RUN",
                                              SqlInput.destination_id == run_id).all()
        inputs = [(row.input_uuid, row.source_type, row.source_id) for row in rows]
        for input_uuid, _, _ in inputs:
            session.query(SqlInputTag).filter(SqlInputTag.input_uuid == input_uuid).delete(synchronize_session=False)
            session.query(SqlInput).filter(SqlInput.input_uuid == input_uuid).delete(synchronize_session=False)
        for _, source_type, source_id in inputs:
            if source_type == "DATASET" and not session.query(SqlInput).filter(SqlInput.source_id == source_id).count():
                session.query(SqlDataset).filter(SqlDataset.dataset_uuid == source_id).delete(synchronize_session=False)


def runs_started_before(runs: Iterable[Any], cutoff_ms: int) -> list:
    """llmops-lab runs (those with a kind tag) started before ``cutoff_ms``."""
    return [r for r in runs if T.KIND in r.data.tags and (r.info.start_time or 0) < cutoff_ms]


# -- prompt registry -------------------------------------------------------------------------------------------

def prompt_versions_containing(client: Any, needle: str) -> list[tuple[str, int]]:
    """``(name, version)`` of every registry prompt version whose template or tags hold ``needle``."""
    needle = needle.lower()
    found = []
    prompts = paged(lambda token, n: client.search_prompts(max_results=n, page_token=token))
    for prompt in prompts:
        for version in client.search_prompt_versions(prompt.name, max_results=1000):
            text = _folded({"template": version.template, "tags": version.tags, "name": prompt.name,
                            "commit": getattr(version, "commit_message", None)})
            if needle in text:
                found.append((prompt.name, int(version.version)))
    return found


def delete_prompt_versions(client: Any, versions: Iterable[tuple[str, int]]) -> int:
    """Delete these versions; a prompt left with no version goes too."""
    gone = 0
    names = set()
    for name, version in versions:
        client.delete_prompt_version(name, str(version))
        names.add(name)
        gone += 1
    for name in names:
        if not list(client.search_prompt_versions(name, max_results=1)):
            client.delete_prompt(name)
    return gone


# -- the store file ---------------------------------------------------------------------------------------------

def sqlite_path(uri: str) -> Path | None:
    """The file of a local sqlite tracking URI, None for a server or another database."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def compact_store(uri: str) -> bool:
    """Checkpoint the WAL and VACUUM a local sqlite store so deleted rows leave the file; False (nothing done)
    for a server or another database, whose operator owns vacuum and backups (docs/security.md)."""
    path = sqlite_path(uri)
    if path is None or not path.exists():
        return False
    from llmops_lab.tracking.clients import client_for

    with contextlib.suppress(Exception):  # MLflow's pooled connections would pin old pages: let them go first
        _store(client_for(uri)).engine.dispose()
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return True


# -- the audit record ------------------------------------------------------------------------------------------

def log_erasure_run(client: Any, *, artifact_location: str | None, user: str, selector: str,
                    counts: dict[str, int], digest: str | None, dry_run: bool, operation: str) -> str:
    """An audit run (``llmops.kind=erasure``) in experiment ``llmops-erasures``: who asked, which selector
    kind, the counts; never the erased text (at most its salted hash). Returns its run id."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.time import get_current_time_millis

    exp = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(AUDIT_EXPERIMENT,
                                                                     artifact_location=artifact_location)
    tags = {T.KIND: T.ERASURE, T.USER: user, T.MLFLOW_USER: user}
    run = client.create_run(exp_id, run_name=f"{operation} --{selector}", tags=tags)
    now = get_current_time_millis()
    params = [Param("operation", operation), Param("selector", selector), Param("dry_run", str(dry_run))]
    if digest:
        params.append(Param("selector_digest", digest))
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in counts.items()],
                     params=params, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id
