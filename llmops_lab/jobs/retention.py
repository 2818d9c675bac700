"""``llmops-lab gc`` / :func:`llmops_lab.gc`: apply ``[tool.llmops-lab.retention]`` (parsed by
:mod:`llmops_lab.core.retention`); the scheduler runs it once a day.

>>> # pyproject.toml:  [tool.llmops-lab.retention]  runs = "90d"  cache = "30d"  spool_acked = "7d"
>>> report = llmops_lab.gc(dry_run=True)                                               # doctest: +SKIP
>>> report.counts()["runs"], report.counts()["cache_entries"]                          # doctest: +SKIP

A run older than ``runs`` is hard-deleted like ``forget --run`` (artifacts, traces, child runs; its job outputs
too); ``traces`` also removes old traces of kept runs; ``cache`` removes entries by their ``created_at``;
``spool_acked`` drops acknowledged records from spool files (of exited processes) last written earlier;
``job_outputs`` removes executed notebooks, reports and metrics files under ``.llmops/jobs/`` by their mtime.
Erasure audit runs are never collected. The audit line of a gc says ``operation: gc``.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from llmops_lab.jobs.erasure import (
    ErasureReport,
    apply,
    job_output_files,
    job_outputs_of,
    record_audit,
)

if TYPE_CHECKING:
    from llmops_lab.config import Settings


def gc(dry_run: bool = False, *, now: datetime | None = None, settings: Settings | None = None) -> ErasureReport:
    """Delete what is older than the retention limits; ``dry_run`` reports only; ``now`` for tests.

    >>> llmops_lab.gc(dry_run=True).describe().splitlines()[0]                          # doctest: +SKIP
    'gc --retention: would delete'
    """
    from llmops_lab.config import get_settings
    from llmops_lab.core.cache import ResponseCache
    from llmops_lab.core.retention import parse_retention
    from llmops_lab.tracking import erasure as E
    from llmops_lab.tracking.clients import kernel_client
    from llmops_lab.tracking.spool_purge import purge_acked

    settings = settings or get_settings()
    limits = parse_retention(settings.retention)
    now = now or datetime.now(UTC)
    home = settings.home
    report = ErasureReport("gc", "retention", dry_run)
    if not limits:
        return report

    def cutoff(kind: str) -> float | None:
        return (now - limits[kind]).timestamp() if kind in limits else None

    uri = settings.resolved_tracking_uri()
    client = kernel_client(uri)
    runs, traces = [], {}
    if "runs" in limits or "traces" in limits:
        every = E.all_runs(client)
        if "runs" in limits:
            runs = E.with_children(every, E.runs_started_before(every, int(cutoff("runs") * 1000)))
            traces = {t.info.trace_id: t for t in E.traces_of_runs(client, runs)}
        if "traces" in limits:
            traces.update({t.info.trace_id: t for t in E.traces_before(client, int(cutoff("traces") * 1000))})
    report.runs = [r.info.run_id for r in runs]
    report.artifacts = [f"{r.info.run_id}/{path}" for r in runs for path in E.artifact_files(client, r)]
    report.traces = list(traces)

    cache_keys: list[str] = []
    if "cache" in limits and (home / "cache.db").exists():
        with ResponseCache(home / "cache.db") as cache:
            cache_keys = cache.keys_created_before(cutoff("cache"))
    report.cache_entries = cache_keys

    outputs = job_outputs_of(home, runs)
    if "job_outputs" in limits:
        outputs += [p for p in job_output_files(home) if p.stat().st_mtime < cutoff("job_outputs") and p not in outputs]
    report.job_outputs = [str(p.relative_to(home)) for p in outputs]

    if "spool_acked" in limits:
        purge = purge_acked(home, cutoff("spool_acked"), dry_run=dry_run)
        report.spool_records, report.spool_files = purge.records, purge.files

    if not dry_run:
        apply(client, uri, report, runs, list(traces.values()), cache_keys, outputs, [], home)
        record_audit(settings, client, report, None)
    return report
