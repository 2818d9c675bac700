"""``llmops-lab forget`` / :func:`llmops_lab.forget`: delete every stored trace of a text, a user or a run.

>>> report = llmops_lab.forget(contains="Ada Lovelace", dry_run=True)                  # doctest: +SKIP
>>> report.counts()                                                                     # doctest: +SKIP
{'runs': 2, 'artifacts': 4, 'traces': 2, 'cache_entries': 1, 'spool_records': 0, ...}
>>> llmops_lab.forget(user="ada")                                                       # doctest: +SKIP

Where it looks (docs/security.md, "Erasure and retention"): MLflow runs (params, tags, metric names, text
artifacts) and their artifacts, traces (spans' inputs, outputs, attributes), prompt registry versions
(``--contains`` only: a prompt is shared, nobody owns it), the response cache, the spool and the batch
staging folders, and job outputs (executed notebooks, reports, metrics files). ``--user`` and ``--run`` find
the runs first; the cache entries that go are those holding one of those runs' answers (the cache has no
user column; an entry with the same answer for someone else goes too, which only costs a repeated call).

This module lives in ``jobs/`` because it is the layer allowed to call the core's cache, ``tracking/`` and the
jobs' history at once (tests/test_layers.py); the MLflow work is :mod:`llmops_lab.tracking.erasure`, the spool's
:mod:`llmops_lab.tracking.spool_purge`. Every erasure is audited (:func:`audit`) without the erased text.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    from llmops_lab.config import Settings

AUDIT_FILE = "erasures.jsonl"  # under <home>: one line per erasure, append-only
KINDS = ("runs", "artifacts", "traces", "cache_entries", "spool_records", "staging", "job_outputs",
         "prompt_versions")


@dataclass
class ErasureReport:
    """What was (or, with ``dry_run``, would be) deleted: ids per kind."""

    operation: str  # "forget" or "gc"
    selector: str  # "contains", "user", "run" or "retention"
    dry_run: bool
    runs: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)  # "<run id>/<path>"
    traces: list[str] = field(default_factory=list)
    cache_entries: list[str] = field(default_factory=list)  # cache keys
    spool_records: list[str] = field(default_factory=list)  # record ids
    staging: list[str] = field(default_factory=list)  # batch ids
    job_outputs: list[str] = field(default_factory=list)  # paths under the home
    prompt_versions: list[str] = field(default_factory=list)  # "name/version"
    spool_files: list[str] = field(default_factory=list)  # rewritten or deleted
    live_spool_files: list[str] = field(default_factory=list)  # held by a running process: not touched
    hard: bool = True  # False: the store (a server) could only mark the runs deleted
    compacted: list[str] = field(default_factory=list)  # sqlite files vacuumed
    not_compacted: list[str] = field(default_factory=list)  # busy: deleted rows' bytes may remain until a rerun
    audit_run: str | None = None

    def counts(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": self.counts()}

    def describe(self) -> str:
        """Lines for the terminal: a count per kind, the first ids, and what was left alone."""
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{self.operation} --{self.selector}: {verb}"]
        for kind, n in self.counts().items():
            ids = getattr(self, kind)
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            lines.append(f"  {kind.replace('_', ' ')}: {n}" + (f"  ({shown})" if n else ""))
        if self.live_spool_files:
            lines.append(f"  not touched: {len(self.live_spool_files)} spool file(s) held by a running process "
                         f"({', '.join(self.live_spool_files)}); run this again after it exits")
        if not self.hard and self.runs:
            lines.append("  runs were marked deleted only (a tracking server): its operator runs `mlflow gc`")
        if self.not_compacted:
            lines.append(f"  not vacuumed (busy): {'; '.join(self.not_compacted)}; deleted rows' bytes stay in "
                         "the file until a later forget or gc vacuums it")
        if self.audit_run:
            lines.append(f"  audit: run {self.audit_run} in experiment llmops-erasures")
        return "\n".join(lines)


def _settings(settings: Settings | None) -> Settings:
    from llmops_lab.config import get_settings

    return settings or get_settings()


def _selector(contains: str | None, user: str | None, run: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in (("contains", contains), ("user", user), ("run", run)) if v is not None]
    if len(given) != 1:
        raise ConfigError("forget needs exactly one of contains=TEXT, user=NAME or run=ID")
    kind, value = given[0]
    if not str(value).strip():
        raise ConfigError(f"forget {kind}= is empty: it would match everything")
    return kind, str(value)


# -- what runs hold --------------------------------------------------------------------------------------------

def _answers(client: Any, runs: Iterable[Any]) -> set[str]:
    """The answers these runs logged (single: output.md; batch: results.csv's output column)."""
    from llmops_lab.tracking.reader import artifact_text

    found: set[str] = set()
    for run in runs:
        text = artifact_text(client, run, "output.md")
        if text:
            found.add(text)
        table = artifact_text(client, run, "results.csv")
        if table:
            found |= {row["output"] for row in csv.DictReader(io.StringIO(table)) if row.get("output")}
    return found


def job_outputs_of(home: Path, runs: Iterable[Any]) -> list[Path]:
    from llmops_lab.jobs.store import store_for

    if not (home / "jobs.db").exists():
        return []
    store = store_for(home)
    paths = []
    for run in runs:
        execution = store.find_by_run(run.info.run_id)
        if execution is None:
            continue
        for name in (execution.output_path, execution.report_path):
            if name:
                paths.append(Path(name))
        if execution.output_path:
            paths.append(Path(execution.output_path).with_suffix(".metrics.jsonl"))
    return [p for p in paths if p.is_file()]


def job_output_files(home: Path) -> list[Path]:
    """Executed notebooks, reports and metrics files under ``<home>/jobs`` and ``<home>/demo`` (not locks or the
    scheduler log, which hold no prompt or answer)."""
    return sorted(p for folder in (home / "jobs", home / "demo") if folder.is_dir() for p in folder.rglob("*")
                  if p.is_file() and p.suffix in (".ipynb", ".html", ".jsonl"))


def _select_runs(client: Any, runs: list, kind: str, value: str) -> tuple[list, list]:
    """The runs a selector picks, and (``contains``) the traces that hold the text, wherever they were logged."""
    from llmops_lab.tracking import erasure as E

    if kind == "contains":
        chosen = E.runs_containing(client, runs, value)
        hit_traces = E.traces_containing(client, value)
        traced = {E.trace_run(t) for t in hit_traces} - {r.info.run_id for r in chosen}
        return chosen + [r for r in runs if r.info.run_id in traced], hit_traces
    if kind == "user":
        return E.with_children(runs, E.runs_of_user(runs, value)), []
    chosen = E.with_children(runs, [r for r in runs if r.info.run_id == value])
    if not chosen:
        raise ConfigError(f"no run {value!r} in the tracking store (llmops-lab audit lists the runs)")
    return chosen, []


def _cache_keys(path: Path, needle: str | None, answers: set[str] | None) -> list[str]:
    """Keys of the cache entries whose answer holds ``needle`` or is one of ``answers``."""
    from llmops_lab.core.cache import ResponseCache

    if not path.exists():
        return []
    with ResponseCache(path) as cache:
        if needle is not None:
            return [k for k, v in cache.entries() if needle in (v.text or "").lower()
                    or needle in (v.tokens or "").lower()]
        return [k for k, v in cache.entries() if v.text in (answers or set())]


# -- forget ----------------------------------------------------------------------------------------------------

def forget(contains: str | None = None, user: str | None = None, run: str | None = None, *, dry_run: bool = False,
           settings: Settings | None = None) -> ErasureReport:
    """Delete every stored trace of a text (case-insensitive, as stored: records are kept redacted), a user or a
    run; ``dry_run`` reports only. Give exactly one selector.

    >>> llmops_lab.forget(run="1a2b3c4d5e6f", dry_run=True).counts()["runs"]         # doctest: +SKIP
    1
    """
    from llmops_lab.tracking import erasure as E
    from llmops_lab.tracking import tags as T
    from llmops_lab.tracking.clients import kernel_client
    from llmops_lab.tracking.spool_purge import purge_spool

    kind, value = _selector(contains, user, run)
    settings = _settings(settings)
    home = settings.home
    _deliver_own_records(settings, close=not dry_run)
    report = ErasureReport("forget", kind, dry_run)
    uri = settings.resolved_tracking_uri()
    client = kernel_client(uri)
    needle = value.lower() if kind == "contains" else None
    chosen, hit_traces = _select_runs(client, E.all_runs(client), kind, value)
    traces = {t.info.trace_id: t for t in [*E.traces_of_runs(client, chosen), *hit_traces]}
    report.runs = [r.info.run_id for r in chosen]
    report.artifacts = [f"{r.info.run_id}/{path}" for r in chosen for path in E.artifact_files(client, r)]
    report.traces = list(traces)
    record_ids = {r.data.tags.get(T.RECORD_ID) for r in chosen} - {None}

    cache_keys = _cache_keys(home / "cache.db", needle, None if needle else _answers(client, chosen))
    report.cache_entries = cache_keys

    if kind == "contains":
        outputs = [p for p in job_output_files(home) if E.file_contains(p, needle or "")]
        prompt_versions = E.prompt_versions_containing(client, value)
    else:
        outputs = job_outputs_of(home, chosen)
        prompt_versions = []
    report.job_outputs = [str(p.relative_to(home)) if p.is_relative_to(home) else str(p) for p in outputs]
    report.prompt_versions = [f"{name}/{version}" for name, version in prompt_versions]

    def match(record: dict[str, Any]) -> bool:
        if kind == "contains":
            return (needle or "") in json.dumps(record, ensure_ascii=False, default=str).lower()
        if kind == "user":
            return record.get("user") == value or record.get("id") in record_ids
        return record.get("id") in record_ids

    purge = purge_spool(home, match, needle=needle, dry_run=dry_run)
    report.spool_records, report.spool_files = purge.records, purge.files
    report.staging, report.live_spool_files = purge.staging, purge.live_files

    if not dry_run:
        apply(client, uri, report, chosen, list(traces.values()), cache_keys, outputs, prompt_versions, home)
        record_audit(settings, client, report, value if kind != "run" else None)
    return report


def _deliver_own_records(settings: Settings, close: bool) -> None:
    """This process's pending records go to MLflow first (so they are found there); with ``close`` its spool
    file closes too (a file held by a live process is never rewritten, and this process is one)."""
    from llmops_lab import tracking

    # Only a tracker this process already has: making one would start a replay of the other processes'
    # files, which would hold their locks while they are purged.
    if settings.tracking and tracking._tracker is not None:
        tracking.flush()
        if close:
            tracking.shutdown()


def apply(client: Any, uri: str, report: ErasureReport, runs: list, traces: list, cache_keys: list[str],
           outputs: list[Path], prompt_versions: list[tuple[str, int]], home: Path) -> None:
    """The deletes, in an order where a crash half-way leaves nothing pointing at what is gone."""
    from llmops_lab.core.cache import ResponseCache
    from llmops_lab.tracking import erasure as E

    if traces:
        E.delete_traces(client, traces)
    if runs:
        report.hard = E.hard_delete_runs(client, runs)
    if prompt_versions:
        E.delete_prompt_versions(client, prompt_versions)
    for path in outputs:
        path.unlink(missing_ok=True)
    if (home / "cache.db").exists():
        with ResponseCache(home / "cache.db") as cache:
            if cache_keys:
                cache.delete(cache_keys)
            _compact(report, str(home / "cache.db"), cache.compact)  # also when nothing matched: earlier pages go
    if E.sqlite_path(uri) is not None:
        _compact(report, str(E.sqlite_path(uri)), lambda: E.compact_store(uri))


def _compact(report: ErasureReport, name: str, vacuum: Any) -> None:
    """VACUUM one file; a file another process keeps busy past the timeout is reported, not a traceback."""
    import sqlite3

    try:
        done = vacuum()
    except sqlite3.OperationalError as err:
        report.not_compacted.append(f"{name} ({err})")
    else:
        if done is not False:  # False: no such file, nothing to vacuum
            report.compacted.append(name)


# -- the audit record ------------------------------------------------------------------------------------------

def _digest(value: str) -> str:
    """``sha256:<salt>:<hash>`` of the lower-cased selector: whoever knows the text can check it was erased;
    the record alone does not give it back (a short text can still be guessed: that is the limit of a hash)."""
    salt = os.urandom(16).hex()
    return f"sha256:{salt}:{hashlib.sha256((salt + value.lower()).encode('utf-8')).hexdigest()}"


def record_audit(settings: Settings, client: Any, report: ErasureReport, selector_value: str | None) -> None:
    """Who asked, when, which selector kind, the counts: appended to ``<home>/erasures.jsonl`` and, when the
    store accepts it, an MLflow run (``llmops.kind=erasure``) that ``llmops-lab audit`` lists."""
    from llmops_lab.tracking import context
    from llmops_lab.tracking import erasure as E

    who = context.user()
    digest = _digest(selector_value) if selector_value else None
    counts = report.counts()
    location = None
    if settings.resolved_tracking_uri().startswith("sqlite:"):
        location = (settings.home / "artifacts" / E.AUDIT_EXPERIMENT).resolve().as_uri()
    try:
        report.audit_run = E.log_erasure_run(client, artifact_location=location, user=who, selector=report.selector,
                                             counts=counts, digest=digest, dry_run=report.dry_run,
                                             operation=report.operation)
    except Exception as err:  # noqa: BLE001 - the file below is the durable record; MLflow is the convenience
        report.audit_run = None
        audit_error = f"{type(err).__name__}: {str(err)[:200]}"
    else:
        audit_error = None
    line = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "user": who,
            "operation": report.operation, "selector": report.selector, "selector_digest": digest,
            "counts": counts, "hard": report.hard, "audit_run": report.audit_run, "audit_run_error": audit_error}
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / AUDIT_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def erasures(settings: Settings | None = None) -> list[dict[str, Any]]:
    """The erasure audit lines, oldest first (``llmops-lab audit --erasures``)."""
    path = _settings(settings).home / AUDIT_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
