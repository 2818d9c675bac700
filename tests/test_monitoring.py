"""Monitoring: stats read back from a real store filled by runs against the fake server at known latencies;
drift on synthetic series; plots rendered to PNG without a display."""
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

import llmops_lab
from conftest import REPO, make_project, mlflow_client
from llmops_lab.analysis import monitoring as mon
from llmops_lab.exceptions import ConfigError, ProviderError

PRICE = {"input": 1.0, "output": 2.0}  # $ per 1M tokens
# Client-side latency = the server's sleep + HTTP + SDK overhead: a few ms, more on a busy 2-core box.
P50_SLACK_MS = 30


# -- a store filled by real calls ----------------------------------------------------------------------

def _activate(root, server):
    """Point llmops-lab at the project ``root`` with the fake server as endpoint ``fake`` and a price."""
    import llmops_lab.config as config

    config.reset_settings(root)
    settings = llmops_lab.get_settings()
    settings.endpoints["fake"] = {"base_url": server.base_url}
    settings.prices["fake:test-model"] = dict(PRICE)
    llmops_lab.configure(model="fake:test-model", max_retries=0)


@pytest.fixture(scope="module")
def store(fake_server, tmp_path_factory):
    """One project store for the module (filling it is the slow part), made by real calls through
    ``llmops_lab.run`` / ``llmops_lab.batch`` against the fake server at known latencies.

    nb/a: 10 calls of prompt ``fast`` at 50 ms, 10 of ``slow`` at 150 ms, 2 failed ``slow`` calls at 300 ms.
    nb/b: 3 calls of ``other`` on a model without a price, a batch ``classify`` of 8 rows at 50 ms (6 right)
    and the same batch again (8 cache hits).

    The MLflow writer is held while calling, so that writing runs in this same process does not add its
    CPU time to the latencies measured; ``load_calls`` must then flush the spool itself or see nothing.
    """
    import llmops_lab.tracking as tracking
    from llmops_lab.tracking.tracker import Tracker

    root = make_project(tmp_path_factory.mktemp("monitoring"))  # no store: the first write below creates it
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        tracking.shutdown(5)
        fake_server.reset()
        _activate(root, fake_server)
        mp.setattr(Tracker, "start", lambda self: None)
        out = _populate(fake_server, root, mp)
        mp.undo()  # the writer may start again (and the notebook variable is gone)
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert not (root / ".llmops" / "mlflow.db").exists()  # nothing written yet: all in the spool
        out["calls"] = mon.load_calls()
        out["root"], out["server"] = root, fake_server
        yield out
        tracking.shutdown(10)
        fake_server.latency_ms = 0
        import llmops_lab.config as config

        config.reset_settings(REPO)


@pytest.fixture
def stored(store):
    """The module store, active again for this test (settings are per process)."""
    _activate(store["root"], store["server"])
    return store


def _populate(fake, project, monkeypatch):
    nb_a, nb_b = str(project / "nb" / "a.ipynb"), str(project / "nb" / "b.ipynb")
    out = {"nb_a": nb_a, "nb_b": nb_b, "singles": []}
    llmops_lab.configure(tracking=False)
    llmops_lab.run("warm up {{ i }}", {"i": 0})  # first call of the process: client set-up; not tracked
    llmops_lab.configure(tracking=True)

    monkeypatch.setenv("LLMOPS_NOTEBOOK", nb_a)
    fake.latency_ms = 50
    out["singles"] += [llmops_lab.run("fast {{ i }}", {"i": i}, name="fast") for i in range(10)]
    fake.latency_ms = 150
    out["singles"] += [llmops_lab.run("slow {{ i }}", {"i": i}, name="slow") for i in range(10)]
    fake.latency_ms = 300
    fake.fail_next("500", count=2)
    for i in range(2):
        with pytest.raises(ProviderError):
            llmops_lab.run("slow {{ i }}", {"i": 100 + i}, name="slow")

    monkeypatch.setenv("LLMOPS_NOTEBOOK", nb_b)
    fake.latency_ms = 0
    out["singles"] += [llmops_lab.run("other {{ i }}", {"i": i}, name="other", model="fake:other-model")
                       for i in range(3)]
    fake.latency_ms = 50
    df = pd.DataFrame({"text": [f"t{i}" for i in range(8)],
                       "label": [f"echo: Classify: t{i}" if i < 6 else "wrong" for i in range(8)]})
    out["batch1"] = llmops_lab.batch("Classify: {{ text }}", df, name="classify", scorers=["exact:label"],
                                     concurrency=4, progress=False, trace_sample=0)
    out["batch2"] = llmops_lab.batch("Classify: {{ text }}", df, name="classify", scorers=["exact:label"],
                                     concurrency=4, progress=False, trace_sample=0)
    assert out["batch2"]["cached"].all() and not out["batch1"]["cached"].any()
    return out


def test_load_calls_gives_one_row_per_call(stored):
    store = stored
    calls = store["calls"]  # read by the fixture right after the calls, with the writer held till then
    assert calls.equals(mon.load_calls())
    assert list(calls.columns[:len(mon.CALL_COLUMNS)]) == mon.CALL_COLUMNS
    assert "score.exact_label" in calls.columns
    assert len(calls) == 10 + 10 + 2 + 3 + 16
    assert str(calls["ts"].dt.tz) == "UTC" and calls["ts"].is_monotonic_increasing
    assert calls.groupby("kind").size().to_dict() == {"single": 25, "batch": 16}
    assert set(calls["experiment"]) == {"nb/a", "nb/b"}
    assert calls["error"].sum() == 2 and calls["cached"].sum() == 8
    assert set(calls.loc[calls["error"], "prompt"]) == {"slow@1"}

    singles = calls[calls["kind"] == "single"].set_index("run_id")
    for r in store["singles"]:
        row = singles.loc[r.run_id]
        assert row["output_chars"] == len(r.text) and row["latency_ms"] == pytest.approx(r.latency_ms)
        assert row["prompt_tokens"] == r.usage["prompt_tokens"]
        assert (math.isnan(row["cost_usd"]) if r.cost_usd is None else row["cost_usd"] == pytest.approx(r.cost_usd))
    assert singles["score.exact_label"].isna().all()

    batch = calls[calls["kind"] == "batch"]
    first = batch[~batch["cached"]]
    assert first["output_chars"].tolist() == store["batch1"]["output"].str.len().tolist()
    assert first["score.exact_label"].tolist() == [1.0] * 6 + [0.0] * 2
    assert batch.loc[batch["cached"], "cost_usd"].eq(0).all()
    assert batch["run_rows_per_s"].notna().all() and batch["run_id"].nunique() == 2


def test_summarize_from_real_runs(stored):
    store = stored
    calls = mon.load_calls()
    overall = mon.summarize(calls).iloc[0]
    assert overall["calls"] == 41 and overall["errors"] == 2 and overall["cache_hits"] == 8
    assert overall["error_rate"] == pytest.approx(2 / 41)
    assert overall["runs"] == 25 + 2

    by_prompt = mon.summarize(calls, by="prompt").set_index("prompt")
    assert list(by_prompt.index) == ["classify@1", "fast@1", "other@1", "slow@1"]
    fast, slow, batch = by_prompt.loc["fast@1"], by_prompt.loc["slow@1"], by_prompt.loc["classify@1"]
    # exactly the percentiles of what each call measured (linear interpolation, as batches compute them) ...
    for prompt, latencies in (("fast@1", [r.latency_ms for r in store["singles"][:10]]),
                              ("slow@1", [r.latency_ms for r in store["singles"][10:20]])):
        for q in (50, 95, 99):
            assert by_prompt.loc[prompt, f"latency_p{q}_ms"] == pytest.approx(np.percentile(latencies, q))
    # ... which sit where the server's latencies put them: the median tight, the tail (≈ the slowest of
    # 10 calls, at the mercy of the scheduler on a busy box) below the next group's latency
    assert 50 <= fast["latency_p50_ms"] <= 50 + P50_SLACK_MS, fast
    assert 150 <= slow["latency_p50_ms"] <= 150 + P50_SLACK_MS, slow
    assert 50 <= fast["latency_p95_ms"] <= fast["latency_p99_ms"] < 150, fast
    assert 150 <= slow["latency_p95_ms"] <= slow["latency_p99_ms"] < 300, slow  # the 2 failures (≥ 300 ms) excluded
    assert slow["calls"] == 12 and slow["errors"] == 2 and slow["error_rate"] == pytest.approx(2 / 12)
    # cached rows (≈0 ms) would drag the batch's p50 to ~25 ms if they counted
    assert batch["calls"] == 16 and batch["cache_hits"] == 8 and 50 <= batch["latency_p50_ms"] < 150
    assert batch["score.exact_label"] == pytest.approx(0.75)
    assert math.isnan(fast["rows_per_s"]) and math.isnan(fast["score.exact_label"])
    assert fast["tokens_per_s"] == pytest.approx(
        calls.loc[calls["prompt"] == "fast@1", "completion_tokens"].sum()
        / (calls.loc[calls["prompt"] == "fast@1", "latency_ms"].sum() / 1000))

    # the figures a batch logged itself (and the benchmarks measure) come out unchanged
    client = mlflow_client()
    ids = calls.loc[calls["kind"] == "batch", "run_id"].unique()
    metrics = {i: client.get_run(i).data.metrics for i in ids}
    first_id = next(i for i in ids if metrics[i]["cache_hits"] == 0)
    one = mon.summarize(calls[calls["run_id"] == first_id]).iloc[0]
    assert one["latency_p50_ms"] == pytest.approx(metrics[first_id]["latency_p50_ms"], abs=1e-9)
    assert one["latency_p95_ms"] == pytest.approx(metrics[first_id]["latency_p95_ms"], abs=1e-9)
    assert one["rows_per_s"] == pytest.approx(metrics[first_id]["rows_per_s"])
    assert one["cost_usd"] == pytest.approx(metrics[first_id]["cost_usd"])
    assert batch["rows_per_s"] == pytest.approx(16 / sum(8 / m["rows_per_s"] for m in metrics.values()))

    by_model = mon.summarize(calls, by="model").set_index("model")
    assert by_model["calls"].to_dict() == {"fake:other-model": 3, "fake:test-model": 38}
    assert math.isnan(by_model.loc["fake:other-model", "cost_usd"])  # no price: no cost, never 0
    expected_cost = sum(r.cost_usd for r in store["singles"] if r.cost_usd is not None) \
        + store["batch1"]["cost_usd"].sum() + store["batch2"]["cost_usd"].sum()
    assert expected_cost > 0 and by_model.loc["fake:test-model", "cost_usd"] == pytest.approx(expected_cost)
    tokens_in = sum(r.usage["prompt_tokens"] for r in store["singles"]) \
        + store["batch1"]["prompt_tokens"].sum() + store["batch2"]["prompt_tokens"].sum()
    assert by_model["tokens_in"].sum() == tokens_in

    by_notebook = mon.summarize(calls, by="notebook").set_index("notebook")
    assert by_notebook["calls"].to_dict() == {store["nb_a"]: 22, store["nb_b"]: 19}
    by_day = mon.summarize(calls, by="day")
    assert by_day["calls"].sum() == 41 and len(by_day) <= 2  # 2 only if the test straddles midnight UTC
    assert by_day["day"].iloc[-1] == pd.Timestamp.now(tz="UTC").date()


def test_stats_since_experiment_and_old_runs(stored):
    store = stored
    client = mlflow_client()
    exp_id = client.get_experiment_by_name("nb/a").experiment_id
    month_ago = int((time.time() - 30 * 86400) * 1000)
    old = client.create_run(exp_id, start_time=month_ago, tags={
        "llmops.kind": "single", "llmops.prompt": "fast@1", "llmops.model": "fake:test-model"})
    client.log_metric(old.info.run_id, "latency_ms", 999.0)
    client.set_terminated(old.info.run_id, "FINISHED", end_time=month_ago + 999)
    job = client.create_run(exp_id, tags={"llmops.kind": "job"})  # notebook metrics, not calls
    client.set_terminated(job.info.run_id, "FINISHED")

    week = mon.stats()
    assert week["calls"].iloc[0] == 41
    assert mon.stats(since=None)["calls"].iloc[0] == 42 and mon.stats(since="45d")["calls"].iloc[0] == 42
    assert mon.stats(since=pd.Timedelta(days=1))["calls"].iloc[0] == 41
    only_b = mon.stats(by="prompt", experiment="nb/b")
    assert only_b["prompt"].tolist() == ["classify@1", "other@1"] and only_b["calls"].sum() == 19
    assert set(only_b["drift"]) == {"too few calls"}  # all in the last day: no baseline yet
    everything = mon.stats(since="all", by="prompt").set_index("prompt")
    assert everything.loc["fast@1", "drift"] == "too few calls"  # 1 old call: below min_n
    assert mon.load_runs(since=None, kinds=["job"])["run_id"].tolist() == [job.info.run_id]

    with pytest.raises(ConfigError, match="experiment 'nope' not found; the store has: .*nb/a"):
        mon.stats(experiment="nope")
    with pytest.raises(ConfigError) as err:
        mon.stats(by="week")
    assert "model, prompt, day, notebook" in str(err.value) and "\n" not in str(err.value)

    runs = llmops_lab.recent_runs(5, experiment="nb/a")  # moved into monitoring; same columns and order
    assert list(runs.columns) == ["run_id", "start", "prompt", "model", "latency_ms", "total_tokens", "cost_usd",
                                  "status", "kind"]
    assert len(runs) == 5 and runs["start"].is_monotonic_decreasing and runs["kind"].iloc[0] == "job"
    assert llmops_lab.tracking.recent_runs(experiment="missing").empty


@pytest.mark.parametrize("value", ["7x", "d7", "-1d", "0h", "", 7, True, pd.Timedelta(0), "1 fortnight"])
def test_bad_since_is_a_one_line_config_error(value):
    with pytest.raises(ConfigError) as err:
        mon.parse_since(value)
    assert "since=" in str(err.value) and "\n" not in str(err.value)


def test_parse_since():
    assert mon.parse_since("30m") == pd.Timedelta(minutes=30)
    assert mon.parse_since("12h") == pd.Timedelta(hours=12)
    assert mon.parse_since("7d") == pd.Timedelta(days=7) == mon.parse_since(" 7D ")
    assert mon.parse_since("2w") == pd.Timedelta(days=14)
    assert mon.parse_since(pd.Timedelta(hours=1)) == pd.Timedelta(hours=1)
    assert mon.parse_since(None) is None and mon.parse_since("all") is None


# -- summaries on synthetic calls (pure) ---------------------------------------------------------------

def synth(n, *, start="2025-01-01", freq="1h", prompt="p@1", model="m:x", kind="single", run_id=None, **columns):
    """A calls frame of n rows in load_calls' shape (defaults: no error, not cached, 100 ms)."""
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    frame = pd.DataFrame({
        "ts": ts, "run_id": run_id or [f"r{prompt}{i}" for i in range(n)], "kind": kind, "experiment": "e",
        "notebook": "nb.ipynb", "model": model, "prompt": prompt, "latency_ms": 100.0, "prompt_tokens": 10.0,
        "completion_tokens": 5.0, "cost_usd": math.nan, "error": False, "cached": False, "output_chars": 50.0,
        "retries": 0.0, "run_rows_per_s": math.nan})
    for key, value in columns.items():
        frame[key] = value
    return frame


def test_summarize_pure_percentiles_exclusions_and_costs():
    latencies = [10.0, 20.0, 30.0, 40.0, 1000.0, 5000.0, 0.5]
    calls = synth(7, latency_ms=latencies, error=[False] * 4 + [False, True, False],
                  cached=[False] * 6 + [True], cost_usd=[0.01, 0.02, math.nan, math.nan, 0.0, math.nan, 0.0])
    row = mon.summarize(calls).iloc[0]
    used = [10.0, 20.0, 30.0, 40.0, 1000.0]  # not the error (5000) nor the cache hit (0.5)
    assert row["latency_p50_ms"] == np.percentile(used, 50) == 30.0
    assert row["latency_p95_ms"] == pytest.approx(np.percentile(used, 95))
    assert row["latency_p99_ms"] == pytest.approx(np.percentile(used, 99))
    assert row["calls"] == 7 and row["errors"] == 1 and row["cache_hits"] == 1
    assert row["tokens_in"] == 70 and row["tokens_out"] == 35
    assert row["tokens_per_s"] == pytest.approx(5 * 5 / (sum(used) / 1000))
    assert row["cost_usd"] == pytest.approx(0.03)
    assert math.isnan(mon.summarize(synth(3)).iloc[0]["cost_usd"])  # every price unknown: NaN, not 0
    assert math.isnan(row["rows_per_s"])


def test_summarize_groups_rows_per_s_scores_and_order():
    a = synth(10, run_id="b1", kind="batch", run_rows_per_s=5.0, prompt="p@2", **{"score.ok": 1.0})
    b = synth(30, run_id="b2", kind="batch", run_rows_per_s=10.0, prompt="p@10", start="2025-01-03",
              **{"score.ok": [0.0, 1.0] * 15})
    c = synth(4, prompt="q@1", start="2025-01-02", model="m:y")
    calls = pd.concat([a, b, c], ignore_index=True)
    by_prompt = mon.summarize(calls, by="prompt")
    assert by_prompt["prompt"].tolist() == ["p@2", "p@10", "q@1"]  # natural order of versions
    assert by_prompt["rows_per_s"].iloc[:2].tolist() == [5.0, 10.0] and math.isnan(by_prompt["rows_per_s"].iloc[2])
    assert by_prompt["score.ok"].iloc[:2].tolist() == [1.0, 0.5] and math.isnan(by_prompt["score.ok"].iloc[2])
    by_model = mon.summarize(calls, by="model").set_index("model")
    assert by_model.loc["m:x", "rows_per_s"] == pytest.approx(40 / (10 / 5 + 30 / 10))  # rows / total wall time
    by_day = mon.summarize(calls, by="day")
    assert [str(d) for d in by_day["day"]] == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert by_day["calls"].tolist() == [10, 4, 24, 6]
    assert mon.summarize(calls, by="notebook")["calls"].tolist() == [44]
    stacked = pd.concat([a, b, c])  # index labels repeat: grouping is positional
    assert mon.summarize(stacked, by="prompt").equals(by_prompt)
    assert len(mon.plot_stats(stacked).axes[0].get_lines()[0].get_xdata()) == 4
    empty = mon.summarize(calls.iloc[:0], by="model")
    assert empty.empty and list(empty.columns[:3]) == ["model", "runs", "calls"]
    with pytest.raises(ConfigError, match="by='user'"):
        mon.summarize(calls, by="user")


# -- drift (pure) ----------------------------------------------------------------------------------------

def series(values, start="2025-01-01", freq="1h", name="latency_ms"):
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq, tz="UTC"), name=name)


def test_drift_detects_a_shift_in_the_recent_window():
    rng = np.random.default_rng(0)
    s = series(np.concatenate([rng.normal(100, 10, 168), rng.normal(150, 10, 24)]))  # 7 days, then 1 day slower
    r = mon.detect_drift(s, baseline="7d", window="1d")
    assert r.shifted and r.direction == "up" and r.kind == "mean" and r.test == "mann-whitney"
    assert (r.n_baseline, r.n_current) == (168, 24)
    assert r.baseline == pytest.approx(100, abs=3) and r.current == pytest.approx(150, abs=5)
    assert r.change == pytest.approx(0.5, abs=0.08) and r.p_value < 1e-9 and r.statistic > 0
    line = r.describe()
    assert line.startswith("latency_ms shifted up:") and "168 baseline vs 24 recent" in line and "\n" not in line
    assert r.short().startswith("latency_ms ↑ +")
    down = mon.detect_drift(series(np.concatenate([rng.normal(100, 10, 50), rng.normal(60, 10, 20)])), window=20)
    assert down.shifted and down.direction == "down" and down.statistic < 0


def test_drift_no_shift_and_robust_to_one_outlier():
    rng = np.random.default_rng(1)
    same = series(rng.normal(100, 10, 192))
    r = mon.detect_drift(same, baseline="7d", window="1d")
    assert not r.shifted and r.p_value > 0.01 and r.describe().startswith("latency_ms stable:")
    spiked = same.copy()
    spiked.iloc[-1] = 60_000.0  # one timeout-like call in the window: the mean jumps, the distribution does not
    r = mon.detect_drift(spiked, baseline="7d", window="1d")
    assert r.change > 0.1 and not r.shifted


def test_drift_significant_but_tiny_change_is_not_a_shift():
    rng = np.random.default_rng(2)
    s = series(np.concatenate([rng.normal(100, 5, 5000), rng.normal(103, 5, 5000)]), freq="1min")
    r = mon.detect_drift(s, window=5000)
    assert r.p_value < 1e-6 and not r.shifted and "minimum change" in r.describe()
    assert mon.detect_drift(s, window=5000, min_change=0.02).shifted


def test_drift_rates_two_proportion_z():
    base, cur = [True] * 10 + [False] * 490, [True] * 20 + [False] * 80  # 2 % -> 20 % errors
    r = mon.detect_drift(series(base + cur, name="error"), window=100)
    assert r.kind == "rate" and r.test == "two-proportion-z" and r.shifted and r.direction == "up"
    assert r.baseline == pytest.approx(0.02) and r.current == pytest.approx(0.20) and r.change == pytest.approx(0.18)
    pooled = 30 / 600
    z = (0.20 - 0.02) / math.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 100))
    assert r.statistic == pytest.approx(z) and "+18.0 pts" in r.describe()
    same = mon.detect_drift(series([True, False] * 50 + [True, False] * 10, name="error"), window=20)
    assert not same.shifted and same.p_value == pytest.approx(1.0)
    none = mon.detect_drift(series([False] * 60, name="error"), window=10)
    assert not none.shifted and none.p_value == 1.0 and none.direction is None
    with pytest.raises(ConfigError, match="0/1"):
        mon.detect_drift(series([0.5] * 20), window=5, kind="rate")


def test_drift_windows_insufficient_data_and_bad_arguments():
    s = series(range(12))
    past, current = mon.split_windows(s, baseline=3, window=4)
    assert past.tolist() == [5, 6, 7] and current.tolist() == [8, 9, 10, 11]
    past, current = mon.split_windows(s, baseline="3h", window="2h")
    assert past.tolist() == [7, 8, 9] and current.tolist() == [10, 11]
    r = mon.detect_drift(series([1.0] * 8), window="1d")  # everything is recent: no baseline
    assert not r.shifted and r.test == "insufficient-data" and "not enough data" in r.describe()
    assert mon.detect_drift(pd.Series(range(30), dtype=float), baseline=10, window=10).n_baseline == 10
    with pytest.raises(ConfigError, match="indexed by time"):
        mon.detect_drift(pd.Series(range(30), dtype=float), window="1d")
    for bad in ({"window": 0}, {"window": "soon"}, {"baseline": -3}, {"kind": "median"}, {"threshold": 5}):
        with pytest.raises(ConfigError):
            mon.detect_drift(s, **bad)


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for x, y in [(rng.normal(0, 1, 40), rng.normal(0.5, 1, 25)),
                 (rng.integers(0, 5, 30).astype(float), rng.integers(1, 6, 30).astype(float))]:  # with ties
        z, p = mon.mann_whitney(x, y)
        expected = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
        assert p == pytest.approx(expected.pvalue, rel=1e-9)
        assert z > 0  # y is the larger sample


def test_drift_report_per_prompt_and_gate_flags():
    rng = np.random.default_rng(4)
    steady = synth(96, prompt="steady@1", latency_ms=rng.normal(100, 10, 96),
                   **{"score.ok": rng.integers(0, 2, 96).astype(float)})
    slow = synth(96, prompt="slow@1", latency_ms=np.concatenate([rng.normal(100, 10, 72), rng.normal(200, 10, 24)]),
                 output_chars=np.concatenate([rng.normal(50, 5, 72), rng.normal(150, 5, 24)]),
                 error=[False] * 72 + [i % 2 == 0 for i in range(24)])
    calls = pd.concat([steady, slow], ignore_index=True)
    report = mon.drift_report(calls, by="prompt")
    assert report["prompt"].unique().tolist() == ["slow@1", "steady@1"]
    flagged = report[report["shifted"]]
    assert sorted(zip(flagged["prompt"], flagged["metric"])) == [
        ("slow@1", "error"), ("slow@1", "latency_ms"), ("slow@1", "output_chars")]
    score = report[report["metric"] == "score.ok"].iloc[0]
    assert score["kind"] == "rate" and score["prompt"] == "steady@1" and not score["shifted"]
    slow_latency = report[(report["prompt"] == "slow@1") & (report["metric"] == "latency_ms")].iloc[0]
    assert slow_latency["n_current"] == 12  # errors in the window are not latencies
    assert mon.drift_flags(report) == {"drift.latency_ms": 1.0, "drift.output_chars": 1.0, "drift.error": 1.0,
                                       "drift.score.ok": 0.0, "drift.any": 1.0}
    assert mon.drift_flags(mon.drift_report(steady, by=None))["drift.any"] == 0.0
    by_name = mon.drift_report(pd.concat([synth(48, prompt="p@1"), synth(24, prompt="p@2", start="2025-01-03",
                                                                         latency_ms=300.0)]), by="prompt_name")
    assert by_name.set_index("metric").loc["latency_ms", "shifted"]  # a new version that got slower shows


def test_stats_drift_column_and_plot_flag(monkeypatch):
    rng = np.random.default_rng(5)
    calls = pd.concat([synth(96, prompt="a@1", latency_ms=np.r_[rng.normal(100, 5, 72), rng.normal(180, 5, 24)]),
                       synth(96, prompt="b@1", latency_ms=rng.normal(100, 5, 96)),
                       synth(3, prompt="c@1")], ignore_index=True)
    from llmops_lab.analysis import overview  # stats() lives there; monitoring re-exports it

    monkeypatch.setattr(overview, "load_calls", lambda since, experiment: calls)
    shown = []
    monkeypatch.setattr(overview, "_show", shown.append)
    table = mon.stats(by="prompt", plot=True).set_index("prompt")
    assert table.loc["a@1", "drift"].startswith("latency_ms ↑ +")
    assert table.loc["b@1", "drift"] == "ok" and table.loc["c@1", "drift"] == "too few calls"
    assert len(shown) == 1 and len(shown[0].axes) == 3
    assert "drift" not in mon.stats(by="model").columns


# -- plots -----------------------------------------------------------------------------------------------

def test_plot_stats_png(tmp_path):
    rng = np.random.default_rng(6)
    days = [synth(24, start=f"2025-01-0{d}", prompt=f"p@{1 + d // 3}", kind="batch", run_id=f"run{d}",
                  latency_ms=rng.normal(100 * d, 10, 24), cost_usd=0.001 * d, **{"score.ok": rng.random(24)})
            for d in range(1, 6)]
    fig = mon.plot_stats(pd.concat(days, ignore_index=True))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == 3 and titles[0].startswith("latency") and titles[1] == "cost per day"
    assert titles[2].startswith("mean score per prompt version")
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["p50", "p95"]
    p50 = fig.axes[0].get_lines()[0].get_ydata()
    assert len(p50) == 5 and np.all(np.diff(p50) > 0)  # latency grows day by day
    assert len(fig.axes[1].patches) == 5
    assert {line.get_label() for line in fig.axes[2].get_lines()} == {"p@1 · ok", "p@2 · ok"}
    path = tmp_path / "stats.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_per_day_panels_tick_days_not_hours():
    fig = mon.plot_stats(synth(12, cost_usd=0.01))  # one day of data (12 hourly calls)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    for ax in fig.axes[:2]:  # latency per day, cost per day
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels == ["Jan 01"], labels


def test_stats_tables_show_readable_floats():
    from llmops_lab.core.results import format_number, tidy

    table = tidy(mon.summarize(synth(3, latency_ms=[628.6712, 100.0, 101.5])))
    assert "628.6712" not in repr(table) and "628.671200" not in table._repr_html_()
    assert table["latency_p95_ms"].iloc[0] > 575  # the values are exact, only the view is rounded
    assert [format_number(x) for x in (628.67, 12.345, 0.75, 0.074739, 1.2e-05)] == \
        ["629", "12.3", "0.75", "0.0747", "1.2e-05"]


def test_plot_stats_notes_panels_without_data(tmp_path):
    fig = mon.plot_stats(synth(10))  # no price, no scores
    notes = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert notes == ["no cost recorded (no price known for these models)", "no scored batches in this period"]
    fig.savefig(tmp_path / "sparse.png")
    empty = mon.plot_stats(synth(0))
    assert len([t for ax in empty.axes for t in ax.texts]) == 3
    empty.savefig(tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 1000


def test_plots_need_no_display_and_no_pyplot(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_monitoring import synth
        from llmops_lab.analysis.monitoring import plot_stats
        plot_stats(synth(30, cost_usd=0.01)).savefig({str(tmp_path / 'headless.png')!r})
        assert "matplotlib.pyplot" not in sys.modules, "library code must not import pyplot"
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "headless.png").read_bytes()[:4] == b"\x89PNG"
