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

import llmops_lab
from conftest import mlflow_client
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
