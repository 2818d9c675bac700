"""Batch evaluation against the fake server, into a real MLflow store."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import llmops_lab
from conftest import REPO, mlflow_client
from llmops_lab import tracking
from llmops_lab.evaluation.batch import batch, batch_run_id
from llmops_lab.exceptions import ConfigError


def reviews(n=40):
    return pd.DataFrame({"text": [f"review {i}" for i in range(n)],
                         "label": [f"echo: Classify: review {i}" if i % 4 else "wrong" for i in range(n)]})


def test_batch_results_scores_and_mlflow_run(fake, capsys):
    df = reviews(40)
    res = batch("Classify: {{ text }}", df, name="classify", scorers=["exact:label", "contains:text"],
                concurrency=8, trace_sample=5, temperature=0)
    assert list(res.columns[:2]) == ["text", "label"]
    assert {"output", "latency_ms", "total_tokens", "cost_usd", "cached", "error", "exact_label",
            "contains_text"} <= set(res.columns)
    assert res["output"].tolist() == [f"echo: Classify: review {i}" for i in range(40)]
    assert res["exact_label"].mean() == pytest.approx(0.75) and res["contains_text"].mean() == 1.0
    assert res["error"].isna().all() and not res["cached"].any()
    assert fake.request_count == 40
    out = capsys.readouterr().out
    assert "40 rows · 0 errors · 0 cached" in out and "exact_label 0.750" in out

    run_id = batch_run_id(res)
    client = mlflow_client()
    run = client.get_run(run_id)
    assert run.data.tags["llmops.kind"] == "batch" and run.data.tags["llmops.prompt"] == "classify@1"
    assert run.data.metrics["rows"] == 40 and run.data.metrics["score.exact_label"] == pytest.approx(0.75)
    assert run.data.metrics["error_rate"] == 0 and run.data.params["concurrency"] == "8"
    dataset = run.inputs.dataset_inputs[0].dataset
    assert dataset.digest == llmops_lab.data.fingerprint(df) == run.data.params["dataset_digest"]
    assert {a.path for a in client.list_artifacts(run_id)} == {"prompt.txt", "results.csv", "results.json"}
    table = pd.read_csv(client.download_artifacts(run_id, "results.csv"))
    assert len(table) == 40 and table["exact_label"].sum() == 30

    import mlflow

    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
    assert len(traces) == 5


def test_faults_every_row_completes_with_retries_counted(fake):
    fake.fault_rate, fake.faults = 0.2, ("429", "500", "timeout", "reset")
    try:
        llmops_lab.configure(max_retries=6, timeout=0.5)
        res = batch("Classify: {{ text }}", reviews(60), concurrency=8, cache=False, progress=False,
                    trace_sample=0)
    finally:
        fake.fault_rate = 0.0
    assert res["error"].isna().all()
    assert res["output"].tolist() == [f"echo: Classify: review {i}" for i in range(60)]
    # every injected fault was retried; a loaded machine may add client-side timeouts of its own (0.5 s),
    # which are retries too: the server saw exactly one request per row plus one per retry
    assert res["retries"].sum() >= sum(fake.faults_served.values()) > 0
    assert fake.request_count == 60 + res["retries"].sum()


def test_row_failing_after_retries_is_marked_and_batch_goes_on(fake):
    fake.fail_next("500", count=3)  # first row to be sent exhausts max_retries=2
    res = batch("Classify: {{ text }}", reviews(10), concurrency=1, progress=False, trace_sample=0)
    assert res["error"].notna().sum() == 1 and "failed after 3 tries" in res["error"].dropna().iloc[0]
    assert res["output"].notna().sum() == 9


def test_cache_hits_refresh_no_cache_and_errors_not_cached(fake):
    df = reviews(20)
    fake.fail_next("500", count=3)
    first = batch("Classify: {{ text }}", df, concurrency=1, progress=False, trace_sample=0)
    assert first["error"].notna().sum() == 1
    sent = fake.request_count
    second = batch("Classify: {{ text }}", df, concurrency=4, progress=False, trace_sample=0)
    assert fake.request_count == sent + 1  # only the failed row is asked again
    assert second["cached"].sum() == 19 and second["error"].isna().all()
    assert (second.loc[second["cached"], "cost_usd"] == 0).all()
    batch("Classify: {{ text }}", df, concurrency=4, progress=False, trace_sample=0, refresh=True)
    assert fake.request_count == sent + 1 + 20
    batch("Classify: {{ text }}", df, concurrency=4, progress=False, trace_sample=0, cache=False)
    assert fake.request_count == sent + 1 + 40
    # a parameter change is another cache key
    batch("Classify: {{ text }}", df, concurrency=4, progress=False, trace_sample=0, temperature=0.5)
    assert fake.request_count == sent + 1 + 60


def test_identical_in_flight_rows_share_one_request(fake):
    fake.latency_ms = 100
    df = pd.DataFrame({"text": ["same"] * 16})
    res = batch("Classify: {{ text }}", df, concurrency=16, progress=False, trace_sample=0)
    assert fake.request_count == 1 and res["output"].nunique() == 1 and res["error"].isna().all()


def test_rate_limits_halve_concurrency(fake):
    from llmops_lab.evaluation.runner import AdaptiveLimit

    limit = AdaptiveLimit(16, recover_after=3)
    limit.rate_limited()
    assert limit.limit == 8
    limit.rate_limited()  # within the same second: no second cut
    assert limit.limit == 8
    for _ in range(3):
        limit.succeeded()
    assert limit.limit == 9


def test_variables_from_columns_then_notebook(fake):
    res = batch("{{ greeting }} {{ text }}", reviews(3), variables={"greeting": "Hi", "text": "shadowed"},
                progress=False, trace_sample=0)
    assert res["output"].tolist() == [f"echo: Hi review {i}" for i in range(3)]


@pytest.mark.parametrize("data,kwargs,message", [
    (pd.DataFrame({"other": [1]}), {}, "text"),
    (pd.DataFrame({"text": []}), {}, "has no rows"),
    (42, {}, "load_rows accepts"),
    ("missing.csv", {}, "missing.csv"),
    (pd.DataFrame({"text": ["a"]}), {"concurrency": 0}, "concurrency=0"),
    (pd.DataFrame({"text": ["a"]}), {"scorers": ["exact:label"]}, "needs column label"),
    (pd.DataFrame({"text": ["a"]}), {"scorers": ["nope:x"]}, "nope"),
    (pd.DataFrame({"text": ["a"]}), {"temprature": 1}, "did you mean 'temperature'"),
])
def test_bad_input_is_clear_error_before_any_call(fake, data, kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        batch("Classify: {{ text }}", data, progress=False, **kwargs)
    assert "\n" not in str(err.value)
    assert fake.request_count == 0


def test_magic_batch(shell, fake):
    shell.user_ns["reviews_df"] = reviews(12)
    res = shell.run_cell("%%llm --name classify --dataset reviews_df --scorer exact:label --concurrency 4 "
                         "--out results\nClassify: {{ text }}")
    assert res.success, res.error_in_exec
    results = shell.user_ns["results"]
    assert len(results) == 12 and results["exact_label"].sum() == 9
    assert shell.user_ns["_"] is results
    bad = shell.run_cell("%%llm --scorer exact:label\nClassify: {{ text }}")
    assert not bad.success


KILLED_BATCH = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    import pandas as pd, llmops_lab
    from llmops_lab.evaluation.batch import batch
    llmops_lab.get_settings().endpoints["fake"] = {{"base_url": {url!r}}}
    df = pd.DataFrame({{"text": [f"row {{i}}" for i in range(120)]}})
    batch("Say {{{{ text }}}}", df, model="fake:m", concurrency=4, progress=False)
""")


def test_killed_batch_resumes_from_cache_without_repeating_calls(fake, project):
    fake.latency_ms = 20
    code = KILLED_BATCH.format(tests=str(REPO / "tests"), url=fake.base_url)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=project)
    deadline = time.time() + 60
    while fake.request_count < 50 and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sent_before = fake.request_count
    assert 50 <= sent_before < 120

    df = pd.DataFrame({"text": [f"row {i}" for i in range(120)]})
    res = batch("Say {{ text }}", df, model="fake:m", concurrency=4, progress=False, trace_sample=0)
    cached = int(res["cached"].sum())
    assert cached >= sent_before - 4  # all but the calls in flight at the kill were kept
    assert fake.request_count - sent_before == 120 - cached  # nothing asked twice
    asked = [r["messages"][-1]["content"] for r in fake.requests]
    assert len(asked) - len(set(asked)) <= 4
