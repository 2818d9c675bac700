"""The sidebar's runs endpoint on an experiment of 10,000 runs: time for one page of 50, server side.

Measures ``llmops_lab.server.runs.list_runs`` (what ``GET llmops-lab/api/runs`` runs in its thread pool:
experiment lookup, ``MlflowClient.search_runs(max_results, page_token, order_by)``, rows as dicts) against
the bare ``MlflowClient.search_runs(max_results=50)`` call measured in the same run (the baseline).

Creating 10,000 runs through MlflowClient on sqlite costs ~48 ms each (~8 min), so the first
``--real`` runs (default 200) go through the client, to time that path and to be sure the schema is the
one MLflow writes, and the rest are inserted in bulk through MLflow's own ORM models (same tables,
same columns: runs, tags, params, metrics, latest_metrics) in one transaction.

    .venv/bin/python benchmarks/runs_endpoint.py [--runs 10000] [--real 200] [--calls 20] [--metric-calls 2]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MS = 150.0
PAGE = 50


def _real_runs(client, exp_id: str, n: int) -> float:
    """n runs with the tags/params/metrics a single %%llm call logs; returns ms per run."""
    from mlflow.entities import Metric, Param

    start = time.perf_counter()
    for i in range(n):
        run = client.create_run(exp_id, start_time=1_700_000_000_000 + i * 1000, run_name="summarize",
                                tags=_tags(i))
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in _metrics(i).items()],
                         params=[Param(k, v) for k, v in _params().items()])
        client.set_terminated(run.info.run_id, end_time=1_700_000_000_000 + i * 1000 + 400)
    return (time.perf_counter() - start) * 1000 / max(n, 1)


def _tags(i: int) -> dict[str, str]:
    return {"llmops.kind": "single", "llmops.model": "fake:test-model", "llmops.prompt": f"summarize@{i % 3 + 1}",
            "llmops.notebook": "notebooks/bench.ipynb", "mlflow.source.name": "notebooks/bench.ipynb",
            "mlflow.runName": "summarize", "llmops.user": "bench"}


def _params() -> dict[str, str]:
    return {"provider": "fake", "model": "test-model", "temperature": "0", "prompt_name": "summarize",
            "prompt_version": "1"}


def _metrics(i: int) -> dict[str, float]:
    rnd = random.Random(i)
    return {"latency_ms": rnd.uniform(50, 900), "prompt_tokens": 40.0, "completion_tokens": float(rnd.randint(5, 60)),
            "total_tokens": float(40 + rnd.randint(5, 60)), "cost_usd": rnd.uniform(0, 1e-3)}


def _bulk_runs(client, exp_id: str, first: int, n: int, artifact_root: str) -> float:
    """n more runs in one transaction via MLflow's ORM models; returns seconds."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag

    store = client._tracking_client.store  # the SqlAlchemyStore behind this client
    start = time.perf_counter()
    with store.ManagedSessionMaker() as session:
        objects = []
        for i in range(first, first + n):
            run_id = uuid.uuid4().hex
            t0 = 1_700_000_000_000 + i * 1000
            objects.append(SqlRun(run_uuid=run_id, name="summarize", source_type="NOTEBOOK", source_name="",
                                  entry_point_name="", user_id="bench", status="FINISHED", start_time=t0,
                                  end_time=t0 + 400, source_version="", lifecycle_stage="active",
                                  artifact_uri=f"{artifact_root}/{run_id}/artifacts", experiment_id=int(exp_id)))
            objects += [SqlTag(key=k, value=v, run_uuid=run_id) for k, v in _tags(i).items()]
            objects += [SqlParam(key=k, value=v, run_uuid=run_id) for k, v in _params().items()]
            for k, v in _metrics(i).items():
                objects.append(SqlMetric(key=k, value=v, timestamp=t0, step=0, is_nan=False, run_uuid=run_id))
                objects.append(SqlLatestMetric(key=k, value=v, timestamp=t0, step=0, is_nan=False, run_uuid=run_id))
        session.add_all(objects)
    return time.perf_counter() - start


def _medians_ms(ours, baseline, calls: int) -> tuple[float, float]:
    """Medians of ``ours()`` and ``baseline()``, calls interleaved so neither gets the warmer cache."""
    ours(), baseline()  # warm: statement compilation, connection
    a, b = [], []
    for _ in range(calls):
        for fn, out in ((ours, a), (baseline, b)):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(a), statistics.median(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--real", type=int, default=200, help="runs created through MlflowClient")
    parser.add_argument("--calls", type=int, default=20, help="timed calls, default order (start_time DESC)")
    parser.add_argument("--metric-calls", type=int, default=10, help="timed calls ordered by latency_ms")
    args = parser.parse_args()

    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from llmops_lab.config import load_settings
    from llmops_lab.server import runs, stores

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "llmops.toml").write_text("")
        settings = load_settings(start=root, environ={})
        uri = settings.resolved_tracking_uri()
        (root / ".llmops").mkdir()
        from mlflow import MlflowClient

        MlflowClient(uri).search_experiments(max_results=1)  # create the schema once
        client = stores.client_for(uri)
        exp_id = client.create_experiment("notebooks/bench", artifact_location=(root / "artifacts").as_uri())
        real = min(args.real, args.runs)
        per_run = _real_runs(client, exp_id, real)
        bulk_s = _bulk_runs(client, exp_id, real, args.runs - real, (root / "artifacts").as_uri())
        print(f"experiment with {args.runs:,} runs: {real} through MlflowClient ({per_run:.1f} ms/run, "
              f"{per_run * args.runs / 60000:.1f} min for all), {args.runs - real:,} bulk-inserted in {bulk_s:.1f} s")

        store = stores.Store(settings, uri, "notebooks/bench")
        results = {}
        # the default order is the target; a metric order is reported too (MLflow's join on latest_metrics,
        # fast once the server has given SQLite planner statistics: see stores.refresh_planner_stats)
        for order, calls in (("start_time DESC", args.calls), ("latency_ms DESC", args.metric_calls)):
            if calls <= 0:
                continue
            order_by = runs.parse_order_by(order)
            page = runs.list_runs(store, max_results=PAGE, order_by=order_by)
            assert len(page["runs"]) == PAGE and page["next_page_token"]
            token = page["next_page_token"]
            ours, baseline = _medians_ms(lambda: runs.list_runs(store, max_results=PAGE, order_by=order_by),
                                         lambda: client.search_runs([exp_id], max_results=PAGE, order_by=[order_by]),
                                         calls)
            second, _ = _medians_ms(lambda: runs.list_runs(store, max_results=PAGE, order_by=order_by,
                                                           page_token=token), lambda: None, calls)
            results[order] = ours
            print(f"order_by={order!r:18} page of {PAGE}: list_runs median {ours:7.1f} ms | "
                  f"raw MlflowClient.search_runs {baseline:7.1f} ms | ratio {ours / baseline:4.2f} | "
                  f"2nd page {second:7.1f} ms   (median of {calls} calls)")
        main_ms = results["start_time DESC"]
        verdict = "OK" if main_ms <= TARGET_MS else "OVER TARGET"
        print(f"target <= {TARGET_MS:.0f} ms for a page in the panel's default order: {main_ms:.1f} ms -> {verdict}")
        return 0 if main_ms <= TARGET_MS else 1

if __name__ == "__main__":
    sys.exit(main())
