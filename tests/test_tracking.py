"""run() end to end into a real sqlite MLflow store, read back through MlflowClient and the registry."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import llmops_lab
from conftest import REPO, mlflow_client
from llmops_lab import tracking
from llmops_lab.exceptions import ProviderError


def test_run_is_logged_with_prompt_trace_params_metrics(fake):
    llmops_lab.get_settings().prices["fake:test-model"] = {"input": 1.0, "output": 2.0}
    r = llmops_lab.run("Summarize: {{ article }}", {"article": "the cat sat"}, name="summarize",
                       temperature=0, max_tokens=64)
    assert r.text == "echo: Summarize: the cat sat"
    assert r.cost_usd == pytest.approx((4 * 1 + 5 * 2) / 1e6)
    run_id = r.run_id
    assert run_id and r.prompt_uri == "prompts:/summarize/1" and r.tracking_status == "logged"

    client = mlflow_client()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["llmops.kind"] == "single"
    assert run.data.tags["llmops.prompt"] == "summarize@1"
    assert json.loads(run.data.tags["mlflow.linkedPrompts"]) == [{"name": "summarize", "version": "1"}]
    assert run.data.params["model"] == "test-model" and run.data.params["temperature"] == "0.0"
    assert run.data.params["endpoint_host"].startswith("127.0.0.1:")
    assert run.data.metrics["total_tokens"] == 9 and run.data.metrics["cost_usd"] > 0
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "llmops-lab"  # no notebook: the default experiment
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert artifacts == {"prompt.txt", "output.md"}
    assert client.download_artifacts(run_id, "prompt.txt", str(fake_tmp(run_id))).endswith("prompt.txt")

    import mlflow

    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
    assert len(traces) == 1
    assert traces[0].info.token_usage["total_tokens"] == 9
    assert mlflow.genai.load_prompt("prompts:/summarize/1").template == "Summarize: {{ article }}"


def fake_tmp(run_id):
    import tempfile

    return tempfile.mkdtemp(prefix=run_id[:6])


def test_new_prompt_version_only_when_text_changes(fake):
    a = llmops_lab.run("v1 {{ x }}", {"x": 1}, name="p")
    b = llmops_lab.run("v1 {{ x }}", {"x": 2}, name="p")
    c = llmops_lab.run("v2 {{ x }}", {"x": 3}, name="p")
    d = llmops_lab.run("v1 {{ x }}", {"x": 4}, name="p")  # back to the first text: reuse version 1
    assert [r.prompt_uri for r in (a, b, c, d)] == ["prompts:/p/1", "prompts:/p/1", "prompts:/p/2", "prompts:/p/1"]
    versions = mlflow_client().search_prompt_versions("p")
    assert len(versions) == 2


def test_experiment_per_notebook(fake, monkeypatch, project):
    monkeypatch.setenv("LLMOPS_NOTEBOOK", str(project / "notebooks" / "01_x.ipynb"))
    r = llmops_lab.run("hi", name="hi")
    run = mlflow_client().get_run(r.run_id)
    assert mlflow_client().get_experiment(run.info.experiment_id).name == "notebooks/01_x"
    assert run.data.tags["mlflow.source.name"].endswith("01_x.ipynb")


def test_provider_failure_is_a_failed_run(fake):
    fake.fail_next("500", count=10)
    with pytest.raises(ProviderError):
        llmops_lab.run("boom", name="boom")
    assert tracking.flush(20) == 0
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name("llmops-lab").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "failed after 3 tries" in runs[0].data.tags["llmops.error"]


def test_store_down_keeps_records_then_delivers(fake, project):
    llmops_lab.configure(tracking_uri="sqlite:////proc/llmops-no-such-dir/mlflow.db")
    r = llmops_lab.run("hello {{ x }}", {"x": 1}, name="q")
    assert r.run_id is None and r.tracking_status == "queued"
    assert "queued" in r.footer()
    spool = list((project / ".llmops" / "spool").glob("*.jsonl"))
    assert len(spool) == 1 and r.record_id in spool[0].read_text()
    llmops_lab.configure(tracking_uri=f"sqlite:///{project / 'back.db'}")
    assert tracking.flush(30) == 0
    assert r.run_id and r.tracking_status == "logged"
    client = mlflow_client()
    found = client.search_runs([client.get_experiment_by_name("llmops-lab").experiment_id])
    assert len(found) == 1


KILLED_KERNEL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import llmops_lab, llmops_lab.tracking.tracker as t
    t.Tracker.start = lambda self: None           # the writer never runs: as if killed before it wrote
    llmops_lab.get_settings().endpoints["fake"] = {{"base_url": {url!r}}}
    for i in range(3):
        llmops_lab.run("kill test {{{{ i }}}}", {{"i": i}}, model="fake:m", name="killed")
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_sigkill_after_calls_loses_nothing_and_replays_once(fake, project):
    code = KILLED_KERNEL.format(tests=str(REPO / "tests"), url=fake.base_url)
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, env={**os.environ}, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert len(list((project / ".llmops" / "spool").glob("*.jsonl"))) == 1

    tracking.replay_if_needed()
    assert tracking.flush(60) == 0
    assert tracking.get_tracker().replayed == 3
    client = mlflow_client()
    exp = client.get_experiment_by_name("llmops-lab")
    assert len(client.search_runs([exp.experiment_id])) == 3
    assert not list((project / ".llmops" / "spool").glob("*.jsonl"))  # delivered, then removed

    # A second replay (another kernel starting) finds nothing to do and writes nothing twice.
    tracking.shutdown()
    tracking.replay_if_needed()
    tracking.flush(10)
    assert len(client.search_runs([exp.experiment_id])) == 3


def test_replay_does_not_duplicate_when_ack_was_lost(fake, project):
    r = llmops_lab.run("once {{ x }}", {"x": 1}, name="once")
    assert r.run_id
    record = next(json.loads(line) for line in tracking.get_tracker().spool.path.read_text().splitlines())
    tracking.shutdown()
    spool_dir = project / ".llmops" / "spool"
    (spool_dir / "spool-999999-deadbeef.jsonl").write_text(json.dumps(record) + "\n")  # acked record, no ack file
    tracking.replay_if_needed()
    assert tracking.flush(30) == 0
    client = mlflow_client()
    exp = client.get_experiment_by_name("llmops-lab")
    assert [run.info.run_id for run in client.search_runs([exp.experiment_id])] == [r.run_id]


def test_tracking_off(fake):
    llmops_lab.configure(tracking=False)
    r = llmops_lab.run("no log", name="nolog")
    assert r.run_id is None and r.tracking_status == "off" and "not tracked" in r.footer()
