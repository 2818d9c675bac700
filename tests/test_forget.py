"""Erasure (``llmops-lab forget``) and retention (``llmops-lab gc``) on a real MLflow sqlite store, with runs made
through the fake OpenAI server (it echoes the prompt, so the erased text is in the answers too): afterwards a
byte scan of the whole project folder (store, WAL, cache, spool, staging, artifacts, job outputs) finds the text
nowhere, and the other runs survive with their artifacts, traces and cache entries."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import mlflow_client

import llmops_lab
from llmops_lab import tracking
from llmops_lab.core.cache import ResponseCache
from llmops_lab.exceptions import ConfigError
from llmops_lab.tracking import context


def hits(root: Path, text: str) -> list[str]:
    """Files under ``root`` whose bytes hold ``text`` (case-insensitive, UTF-8)."""
    needle = text.lower().encode("utf-8")
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file()
                  and needle in p.read_bytes().lower())


def word() -> str:
    return f"Quokka{secrets.token_hex(4)}berry"  # plain words: the redaction masks nothing of them


def seed(user: str, text: str, monkeypatch) -> dict[str, str]:
    """One single call and one batch (cache on, traced rows) by ``user`` about ``text``; their run ids."""
    monkeypatch.setattr(context, "user", lambda: user)
    single = llmops_lab.run("Tell me about {{ thing }}", {"thing": text}, name=f"about-{user}")
    frame = llmops_lab.batch("Describe {{ thing }} briefly", pd.DataFrame({"thing": [text, f"{text} twice"]}),
                             name=f"describe-{user}", progress=False)
    assert tracking.flush(30) == 0
    from llmops_lab import batch_run_id

    return {"single": single.run_id, "batch": batch_run_id(frame)}


def survives(client, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.lifecycle_stage == "active"
    assert client.list_artifacts(run_id)
    assert list(client.search_traces(locations=[run.info.experiment_id], run_id=run_id))


@pytest.fixture
def two_users(fake, project, monkeypatch):
    kept, gone = word(), word()
    runs = {"bob": seed("bob", kept, monkeypatch), "ada": seed("ada", gone, monkeypatch)}
    monkeypatch.setattr(context, "user", lambda: "operator")
    home = project / ".llmops"
    assert hits(project, gone) and hits(project, kept)
    with ResponseCache(home / "cache.db") as cache:
        assert len(cache) == 4
    return {"kept": kept, "gone": gone, "runs": runs, "home": home}


def _kept_cache(home: Path, text: str) -> int:
    with ResponseCache(home / "cache.db") as cache:
        return sum(text.lower() in entry.text.lower() for _, entry in cache.entries())


def test_forget_contains_leaves_no_byte_and_keeps_the_rest(two_users, project):
    gone, kept = two_users["gone"], two_users["kept"]
    started = time.perf_counter()
    report = llmops_lab.forget(contains=gone.upper())  # case-insensitive
    elapsed = time.perf_counter() - started
    ada = two_users["runs"]["ada"]
    assert set(report.runs) == {ada["single"], ada["batch"]}
    counts = report.counts()
    assert counts["traces"] == 3 and counts["cache_entries"] == 2 and counts["artifacts"] >= 4, counts
    assert hits(project, gone) == []
    assert sorted(Path(p).name for p in report.compacted) == ["cache.db", "mlflow.db"] and not report.not_compacted
    client = mlflow_client()
    for run_id in two_users["runs"]["bob"].values():
        survives(client, run_id)
    assert _kept_cache(two_users["home"], kept) == 2
    assert hits(project, kept)
    audit = (two_users["home"] / "erasures.jsonl").read_text()
    assert gone.lower() not in audit.lower() and json.loads(audit)["counts"]["runs"] == 2
    audit_run = client.get_run(report.audit_run)
    assert audit_run.data.tags["llmops.kind"] == "erasure" and audit_run.data.metrics["runs"] == 2
    assert elapsed < 30


def test_dry_run_deletes_nothing(two_users, project):
    before = {p: p.stat().st_size for p in project.rglob("*") if p.is_file() and "-wal" not in p.name}
    report = llmops_lab.forget(contains=two_users["gone"], dry_run=True)
    assert report.dry_run and len(report.runs) == 2 and report.counts()["cache_entries"] == 2
    assert hits(project, two_users["gone"])
    for run_id in two_users["runs"]["ada"].values():
        survives(mlflow_client(), run_id)
    assert not (two_users["home"] / "erasures.jsonl").exists()
    assert [p for p in before if not p.exists()] == []


def test_forget_user(two_users, project):
    report = llmops_lab.forget(user="ada")
    assert set(report.runs) == set(two_users["runs"]["ada"].values())
    assert report.counts()["cache_entries"] == 2
    assert hits(project, two_users["gone"]) == []
    for run_id in two_users["runs"]["bob"].values():
        survives(mlflow_client(), run_id)
    assert _kept_cache(two_users["home"], two_users["kept"]) == 2
    assert "ada" not in (two_users["home"] / "erasures.jsonl").read_text()


def test_forget_run(two_users, project):
    ada = two_users["runs"]["ada"]
    report = llmops_lab.forget(run=ada["batch"])
    assert report.runs == [ada["batch"]] and report.counts()["traces"] == 2
    client = mlflow_client()
    with pytest.raises(Exception, match="not found|does not exist|No Run"):
        client.get_run(ada["batch"])
    survives(client, ada["single"])
    with pytest.raises(ConfigError, match="no run"):
        llmops_lab.forget(run="0" * 32)


def test_selectors_are_checked(bare_project):
    with pytest.raises(ConfigError, match="exactly one"):
        llmops_lab.forget(contains="x", user="y")
    with pytest.raises(ConfigError, match="empty"):
        llmops_lab.forget(contains="  ")


def test_forget_contains_also_prompt_versions_and_job_outputs(fake, project):
    text = word()
    llmops_lab.run(f"Spell {text} backwards", name="speller")  # the text is in the template: a registry version
    assert tracking.flush(30) == 0
    jobs = project / ".llmops" / "jobs" / "nightly"
    jobs.mkdir(parents=True)
    (jobs / "20260101T020000.ipynb").write_text(json.dumps({"cells": [{"source": f"about {text}"}]}))
    (jobs / "20260101T020000.html").write_text(f"<p>{text}</p>")
    (jobs / "20260102T020000.html").write_text("<p>another night</p>")
    report = llmops_lab.forget(contains=text)
    assert report.prompt_versions == ["speller/1"]
    assert sorted(report.job_outputs) == ["jobs/nightly/20260101T020000.html", "jobs/nightly/20260101T020000.ipynb"]
    assert (jobs / "20260102T020000.html").exists()
    assert hits(project, text) == []


def _spool_line(record: dict) -> str:
    return json.dumps(record) + "\n"


def test_spool_and_staging_are_purged_but_a_live_file_is_not_touched(project):
    import fcntl

    text = word()
    spool, staging = project / ".llmops" / "spool", project / ".llmops" / "staging"
    spool.mkdir(parents=True)
    (staging / "b-gone").mkdir(parents=True)
    (staging / "b-gone" / "000000.json").write_text(json.dumps([{"output": f"row about {text}"}]))
    (staging / "b-kept").mkdir()
    (staging / "b-kept" / "000000.json").write_text(json.dumps([{"output": "row about cats"}]))
    dead = spool / "spool-999999-deadbeef.jsonl"  # its process is gone: nobody holds its lock
    dead.write_text(_spool_line({"id": "r1", "kind": "single", "user": "ada", "output": f"hi {text}"})
                    + _spool_line({"id": "r2", "kind": "single", "user": "bob", "output": "hi cats"})
                    + _spool_line({"id": "r3", "kind": "batch", "batch": "b-gone", "user": "bob", "summary": {}})
                    + _spool_line({"id": "r4", "kind": "batch", "batch": "b-kept", "user": "bob", "summary": {}}))
    dead.with_name(dead.name + ".acked").write_text("r1\nr2\n")
    live = spool / "spool-1-cafe.jsonl"
    live.write_text(_spool_line({"id": "r9", "kind": "single", "user": "ada", "output": f"hi {text}"}))
    with open(live, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a running kernel's file
        dry = llmops_lab.forget(contains=text, dry_run=True)
        assert dry.spool_records == ["r1", "r3"] and dry.staging == ["b-gone"] and "r1" in dead.read_text()
        report = llmops_lab.forget(contains=text)
        assert report.live_spool_files == [live.name] and "running process" in report.describe()
        assert text in live.read_text()
    assert report.spool_records == ["r1", "r3"] and report.staging == ["b-gone"]
    assert [json.loads(line)["id"] for line in dead.read_text().splitlines()] == ["r2", "r4"]
    assert dead.with_name(dead.name + ".acked").read_text() == "r2\n"
    assert not (staging / "b-gone").exists() and (staging / "b-kept").exists()
    by_user = llmops_lab.forget(user="bob", dry_run=True)
    assert by_user.spool_records == ["r2", "r4"] and by_user.staging == ["b-kept"]


def test_compact_empties_the_wal(tmp_path):
    import sqlite3

    from llmops_lab.core.cache import CachedResponse

    text = word()
    path = tmp_path / "cache.db"
    reader = sqlite3.connect(path)  # another connection keeps the WAL file alive, as a kernel's cache does
    with ResponseCache(path) as cache:
        cache.put("k1", CachedResponse(f"answer {text}"))
        cache.put("k2", CachedResponse("answer cats"))
        reader.execute("SELECT COUNT(*) FROM responses").fetchall()
        assert cache.delete(["k1", "nope"]) == 1
        assert hits(tmp_path, text)  # still in the WAL (or free pages): deleting is not erasing
        cache.compact()
        assert hits(tmp_path, text) == [] and [k for k, _ in cache.entries()] == ["k2"]
    reader.close()


def _age(project: Path, run_ids: list[str], days: float) -> None:
    """Move runs' start times ``days`` into the past, in the sqlite store itself."""
    import sqlite3

    then = int((time.time() - days * 86400) * 1000)
    with sqlite3.connect(project / ".llmops" / "mlflow.db") as db:
        db.executemany("UPDATE runs SET start_time = ? WHERE run_uuid = ?", [(then, r) for r in run_ids])


def test_gc_applies_the_retention_limits(two_users, project):
    settings = llmops_lab.get_settings()
    settings.retention = {"runs": "90d", "cache": "30d"}
    ada, bob = two_users["runs"]["ada"], two_users["runs"]["bob"]
    _age(project, list(ada.values()), 100)
    with ResponseCache(two_users["home"] / "cache.db") as cache:  # bob's entries: 40 days old
        old = [(k, v) for k, v in cache.entries() if two_users["kept"].lower() in v.text.lower()]
        cache.put_many((k, type(v)(**{**v.__dict__, "created_at": time.time() - 40 * 86400})) for k, v in old)
    dry = llmops_lab.gc(dry_run=True)
    assert set(dry.runs) == set(ada.values()) and len(dry.cache_entries) == 2
    report = llmops_lab.gc()
    assert set(report.runs) == set(ada.values()) and report.counts()["traces"] == 3
    # ada's cache entries are fresh (kept: the cache limit goes by age), and this process's spool file is live
    assert [h for h in hits(project, two_users["gone"]) if not h.startswith((".llmops/cache.db", ".llmops/spool/"))] == []
    for run_id in bob.values():
        survives(mlflow_client(), run_id)
    assert _kept_cache(two_users["home"], two_users["kept"]) == 0
    assert json.loads((two_users["home"] / "erasures.jsonl").read_text())["operation"] == "gc"
    settings.retention = {"traces": "1d"}  # an injected clock: two days on, bob's traces are old, his runs kept
    traces_only = llmops_lab.gc(now=datetime.now(UTC) + timedelta(days=2))
    assert traces_only.runs == [] and traces_only.counts()["traces"] == 3
    client = mlflow_client()
    assert all(client.get_run(r).info.lifecycle_stage == "active" for r in bob.values())
    assert not list(client.search_traces(locations=[client.get_run(bob["batch"]).info.experiment_id]))
    settings.retention = {"runs": "90d"}
    later = llmops_lab.gc(now=datetime.now(UTC) + timedelta(days=91))
    assert set(later.runs) == set(bob.values())


def test_bad_retention_is_one_line_at_load(tmp_path):
    from llmops_lab.config import load_settings

    (tmp_path / "llmops.toml").write_text('[retention]\nruns = "ninety days"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, environ={})
    assert "runs='ninety days'" in str(err.value) and "'7d'" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "llmops.toml").write_text('[retention]\nrun = "90d"\n')
    with pytest.raises(ConfigError, match="no key 'run': use runs, traces, cache"):
        load_settings(tmp_path, environ={})
    (tmp_path / "llmops.toml").write_text('[retention]\nruns = "90d"\ncache = "2w"\n')
    assert load_settings(tmp_path, environ={}).retention == {"runs": "90d", "cache": "2w"}


def test_the_scheduler_runs_gc_once_a_day(bare_project):
    from llmops_lab.jobs.scheduler import Scheduler
    from llmops_lab.jobs.store import store_for

    settings = llmops_lab.get_settings()
    settings.retention = {"cache": "30d"}
    clock = {"now": datetime(2026, 3, 1, 1, 0, tzinfo=UTC)}
    calls = []

    def make() -> Scheduler:
        scheduler = Scheduler(settings, now=lambda: clock["now"], executor=lambda *a: "completed",
                              store=store_for(settings.home), gc=calls.append, echo=lambda line: None)
        scheduler._ready = True  # no MLflow store needed: no job runs here
        return scheduler

    scheduler = make()
    for hours in (0, 1, 23, 24, 30, 47, 48):
        clock["now"] = datetime(2026, 3, 1, 1, 0, tzinfo=UTC) + timedelta(hours=hours)
        scheduler.tick()
    assert [c.hour for c in calls] == [1, 1, 1] and [c.day for c in calls] == [1, 2, 3]
    clock["now"] += timedelta(hours=2)
    make().tick()  # a restart: the last gc is on disk, not repeated
    assert len(calls) == 3
    settings.retention = {}
    clock["now"] += timedelta(days=3)
    scheduler.tick()
    assert len(calls) == 3  # no retention table: nothing to apply


def test_cli_forget_in_a_subprocess(two_users, project):
    tracking.shutdown(10)  # this process's spool file is closed, as when a kernel has exited
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(llmops_lab.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "llmops_lab.cli"]
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300,
                              check=False)

    dry = run("forget", "--contains", two_users["gone"], "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["counts"]["runs"] == 2 and hits(project, two_users["gone"])
    out = run("forget", "--contains", two_users["gone"])
    assert out.returncode == 0, out.stderr
    assert "runs: 2" in out.stdout and "cache entries: 2" in out.stdout
    assert hits(project, two_users["gone"]) == []
    audit = run("audit", "--erasures")
    assert "forget --contains" in audit.stdout and "runs=2" in audit.stdout
    assert two_users["gone"].lower() not in audit.stdout.lower()
    listing = run("audit", "--since", "1d")  # the erasure's MLflow run is in the usual audit listing too
    assert listing.returncode == 0 and "erasure" in listing.stdout, listing.stdout + listing.stderr
    bad = run("forget", "--run", "f" * 32)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "llmops-lab: error: no run" in bad.stderr


def test_forget_run_of_a_job_removes_its_outputs(two_users, project):
    from llmops_lab.jobs.store import store_for

    run_id = two_users["runs"]["ada"]["single"]  # stands for a job's run: jobs.db links the execution to it
    folder = two_users["home"] / "jobs" / "nightly"
    folder.mkdir(parents=True)
    paths = [folder / f"20260101T020000{suffix}" for suffix in (".ipynb", ".html", ".metrics.jsonl")]
    for path in paths:
        path.write_text("{}")
    other = folder / "20260102T020000.ipynb"
    other.write_text("{}")
    store = store_for(two_users["home"])
    execution = store.start("nightly", "schedule", {}, "notebooks/n.ipynb")
    execution.run_id, execution.output_path, execution.report_path = run_id, str(paths[0]), str(paths[1])
    store.update(execution)
    report = llmops_lab.forget(run=run_id)
    assert sorted(report.job_outputs) == sorted(str(p.relative_to(two_users["home"])) for p in paths)
    assert not any(p.exists() for p in paths) and other.exists()


def test_gc_spool_acked_and_job_outputs_by_age(project):
    settings = llmops_lab.get_settings()
    settings.retention = {"spool_acked": "7d", "job_outputs": "60d"}
    spool = project / ".llmops" / "spool"
    spool.mkdir(parents=True)
    old, new = spool / "spool-999998-0ld0.jsonl", spool / "spool-999997-0ew0.jsonl"
    for path in (old, new):
        path.write_text(_spool_line({"id": f"{path.stem}-a", "kind": "single"})
                        + _spool_line({"id": f"{path.stem}-p", "kind": "single"}))
        path.with_name(path.name + ".acked").write_text(f"{path.stem}-a\n")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    jobs = project / ".llmops" / "jobs" / "nightly"
    jobs.mkdir(parents=True)
    stale, fresh = jobs / "20250101T020000.html", jobs / "20260101T020000.html"
    stale.write_text("<p>old</p>")
    fresh.write_text("<p>new</p>")
    os.utime(stale, (time.time() - 61 * 86400,) * 2)
    report = llmops_lab.gc()
    assert report.spool_records == [f"{old.stem}-a"] and report.job_outputs == ["jobs/nightly/20250101T020000.html"]
    assert [json.loads(line)["id"] for line in old.read_text().splitlines()] == [f"{old.stem}-p"]  # pending stays
    assert len(new.read_text().splitlines()) == 2 and not stale.exists() and fresh.exists()


def test_a_run_takes_its_child_runs_along():
    from types import SimpleNamespace as NS

    from llmops_lab.tracking.erasure import with_children

    def run(run_id: str, parent: str | None = None):
        return NS(info=NS(run_id=run_id), data=NS(tags={"mlflow.parentRunId": parent} if parent else {}))

    runs = [run("c1", "p"), run("p"), run("g", "c1"), run("other"), run("c2", "p")]
    assert sorted(r.info.run_id for r in with_children(runs, [runs[1]])) == ["c1", "c2", "g", "p"]


def test_forget_with_a_data_key_reads_sealed_files_and_keeps_what_stays_sealed(project, monkeypatch):
    from llmops_lab.core.cache import CachedResponse
    from llmops_lab.tracking.mlflow_sink import STAGING_CONTEXT
    from llmops_lab.tracking.spool import SPOOL_CONTEXT
    from llmops_lab.trust import at_rest

    monkeypatch.setenv("LLMOPS_DATA_KEY", at_rest.new_key())
    text = word()
    spool, staging = project / ".llmops" / "spool", project / ".llmops" / "staging" / "b-gone"
    spool.mkdir(parents=True)
    staging.mkdir(parents=True)
    (staging / "000000.json").write_text(at_rest.seal(json.dumps([{"output": f"row about {text}"}]), STAGING_CONTEXT))
    dead = spool / "spool-999999-feedface.jsonl"
    dead.write_text("".join(at_rest.seal(json.dumps(r), SPOOL_CONTEXT) + "\n" for r in (
        {"id": "r1", "kind": "single", "user": "ada", "output": f"hi {text}"},
        {"id": "r2", "kind": "single", "user": "bob", "output": "hi cats"},
        {"id": "r3", "kind": "batch", "batch": "b-gone", "user": "bob", "summary": {}})))
    with ResponseCache(project / ".llmops" / "cache.db") as cache:
        cache.put_many([("k-gone", CachedResponse(f"answer about {text}")), ("k-kept", CachedResponse("cats"))])
    report = llmops_lab.forget(contains=text)
    assert report.spool_records == ["r1", "r3"] and report.staging == ["b-gone"] and report.cache_entries == ["k-gone"]
    kept = dead.read_text().splitlines()
    assert len(kept) == 1 and at_rest.is_sealed(kept[0])  # the rewritten spool is sealed, never in clear
    assert json.loads(at_rest.open_text(kept[0], SPOOL_CONTEXT, "t"))["id"] == "r2"
    with ResponseCache(project / ".llmops" / "cache.db") as cache:
        assert cache.get("k-gone") is None and cache.get("k-kept").text == "cats"
