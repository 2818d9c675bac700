"""Removing records from the spool and the batch staging folders (``llmops-lab forget`` and ``gc``).

>>> purge = purge_spool(home, lambda record: record.get("user") == "ada", dry_run=True)  # doctest: +SKIP
>>> purge.records, purge.live_files                                                        # doctest: +SKIP

Only a file whose writer is gone is rewritten: it is locked first (:func:`llmops_lab.tracking.spool.orphans`),
its kept records go to a temporary file that replaces it atomically, and its ``.acked`` sidecar keeps only
the kept ids. A file locked by a running process is never touched under it: it is reported in
``live_files`` (run forget again once that kernel or job has exited). The records of one batch go together
(its ``batch_rows`` chunks, its ``batch`` record and its ``staging/<batch>`` folder): a batch record
without its chunks would be retried forever.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops_lab.tracking.spool import (
    ACKED,
    SPOOL_CONTEXT,
    SUFFIX,
    OrphanFile,
    orphans,
    read_acked,
    read_records,
)
from llmops_lab.trust import at_rest


@dataclass
class SpoolPurge:
    """What a purge removed (or, dry, would remove)."""

    records: list[str] = field(default_factory=list)  # record ids
    files: list[str] = field(default_factory=list)  # spool files rewritten or deleted
    staging: list[str] = field(default_factory=list)  # batch ids whose staging folder went
    live_files: list[str] = field(default_factory=list)  # held by a running process: not touched


def _staging_folders(home: Path) -> list[Path]:
    folder = home / "staging"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _folder_contains(folder: Path, needle: str) -> bool:
    from llmops_lab.tracking.mlflow_sink import STAGING_CONTEXT

    for path in folder.rglob("*"):
        try:
            if not path.is_file():
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            # A chunk sealed with LLMOPS_DATA_KEY is searched decrypted (DataKeyError without the key: the
            # erasure stops in one line rather than missing what it cannot read).
            if needle in at_rest.open_text(text, STAGING_CONTEXT, f"staging file {path}").lower():
                return True
        except OSError:
            continue
    return False


def _rewrite(orphan: OrphanFile, records: list[dict[str, Any]], drop: set[str]) -> None:
    """Replace the file by its records without ``drop`` (atomically), and its ``.acked`` likewise."""
    path = orphan.path
    acked_path = path.with_name(path.name + ACKED)
    kept = [r for r in records if r.get("id") not in drop]
    acked = read_acked(path) & {r.get("id") for r in kept}
    if all(r.get("id") in acked for r in kept):  # nothing left to deliver: the file goes
        path.unlink(missing_ok=True)
        acked_path.unlink(missing_ok=True)
        return
    # Kept records are written as the spool writes them: sealed when LLMOPS_DATA_KEY is set, never in clear.
    sealed = [at_rest.seal(json.dumps(r, ensure_ascii=False, default=str), SPOOL_CONTEXT) + "\n" for r in kept]
    for target, lines in ((path, sealed),
                          (acked_path, [f"{rid}\n" for rid in sorted(acked)])):
        tmp = target.with_name(target.name + ".purge")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)


def _unlock(orphan: OrphanFile, dry_run: bool) -> None:
    if dry_run:  # release() would delete a fully acknowledged file: a dry run deletes nothing
        orphan._handle.close()
    else:
        orphan.release()


def purge_spool(home: Path, match: Callable[[dict[str, Any]], bool], *, needle: str | None = None,
                dry_run: bool = False) -> SpoolPurge:
    """Remove the spool records ``match`` selects (with the rest of their batch) and their staging folders;
    ``needle`` (lower-cased) also selects the staging folders whose chunks hold it."""
    home = Path(home)
    purge = SpoolPurge()
    batches = {p.name for p in _staging_folders(home) if needle and _folder_contains(p, needle)}
    held = []
    for orphan in orphans(home / "spool"):
        held.append((orphan, read_records(orphan.path)))
    try:
        for _, records in held:
            batches |= {r["batch"] for r in records if r.get("batch") and match(r)}
        for orphan, records in held:
            drop = {r.get("id") for r in records if match(r) or r.get("batch") in batches}
            if drop:
                purge.records += sorted(str(d) for d in drop)
                purge.files.append(orphan.path.name)
                if not dry_run:
                    _rewrite(orphan, records, drop)
        mine = {orphan.path for orphan, _ in held}
        purge.live_files = sorted(p.name for p in (home / "spool").glob(f"spool-*{SUFFIX}") if p not in mine) \
            if (home / "spool").is_dir() else []
    finally:
        for orphan, _ in held:
            _unlock(orphan, dry_run)
    for folder in _staging_folders(home):
        if folder.name in batches:
            purge.staging.append(folder.name)
            if not dry_run:
                shutil.rmtree(folder, ignore_errors=True)
    return purge


def purge_acked(home: Path, cutoff: float, *, dry_run: bool = False) -> SpoolPurge:
    """Retention: drop the acknowledged records of spool files last written before ``cutoff`` (epoch s)."""
    purge = SpoolPurge()
    for orphan in orphans(Path(home) / "spool"):
        try:
            if orphan.path.stat().st_mtime >= cutoff:
                continue
            records = read_records(orphan.path)
            drop = read_acked(orphan.path) & {r.get("id") for r in records}
            if drop:
                purge.records += sorted(drop)
                purge.files.append(orphan.path.name)
                if not dry_run:
                    _rewrite(orphan, records, drop)
        finally:
            _unlock(orphan, dry_run)
    return purge
