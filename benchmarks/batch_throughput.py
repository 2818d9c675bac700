"""Throughput and memory of ``llmops_lab.batch`` vs a plain asyncio loop and ``mlflow.genai.evaluate``.

Against ``tests/fake_openai.py`` in its own process; ideal wall time = rows x latency / concurrency.
1. (a) ``openai.AsyncOpenAI(max_retries=0)`` + ``asyncio.Semaphore`` vs (b) ``llmops_lab.batch`` (tracking on,
   fresh project per run: empty cache, new sqlite store), same rows, alternated ``--repeats`` times; medians;
   target (b) >= 95 % of (a)'s rows/s. (b)'s time is what the caller waits for; the MLflow write runs after
   it in the background, timed as ``flush()``; then ``batch_run_id`` must give a run id. CPU per row is shown
   too: unlike wall time it barely moves when other processes share the CPUs. (c) once, in a child:
   ``mlflow.genai.evaluate``, sync ``openai.OpenAI`` predict_fn, one trivial scorer, own sqlite store,
   ``MLFLOW_GENAI_EVAL_MAX_WORKERS`` = concurrency, predict rate limit off (its "auto" starts at 10 rows/s),
   SQLAlchemy pool 40 (the default 5+10 starves 16 threads and drops traces).
2. Warm cache: after each cold batch, the same call again in its project (all hits); target >= 2,000 rows/s.
3. Peak RSS (``os.wait4``) of a child running a ``--big-rows`` batch at 0 ms, then ``flush()``; target <= 500
   MB. Context: a child that only imports llmops_lab, pandas and mlflow and builds the same DataFrame.
MLflow telemetry is off (no network; avoids a 3.17 race on os.environ in evaluate's threads). Exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

import llmops_lab
from llmops_lab import config, tracking

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "Classify the sentiment of this review: {{ text }}"
RATIO_TARGET, WARM_TARGET, RSS_TARGET_MB = 95.0, 2000.0, 500.0
ENV_DROP = ("MLFLOW_TRACKING_URI", "LLMOPS_HOME", "LLMOPS_MODEL", "LLMOPS_TRACKING", "LLMOPS_EXPERIMENT")
EVAL_ENV = {"MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT": "0", "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "40"}
WORDS = "good bad fine awful great slow fast cheap broken lovely noisy quiet".split()


def texts(n: int) -> list[str]:  # distinct: no two rows share a cache key
    return [f"Review {i}: the product was {WORDS[i % 12]}, the delivery {WORDS[i // 12 % 12]}." for i in range(n)]


def message(text: str) -> list[Any]:  # openai wants its TypedDicts
    return [{"role": "user", "content": TEMPLATE.replace("{{ text }}", text)}]


@contextlib.contextmanager
def fake_server(latency_ms: float) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", "0",
                             "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY "), f"fake server did not start: {line!r}"
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def use_project(folder: Path, url: str) -> None:
    """Point llmops_lab at a fresh project in ``folder`` (the previous writer is flushed and stopped first)."""
    tracking.shutdown(60)
    folder.mkdir(parents=True)
    (folder / "llmops.toml").write_text("")
    os.chdir(folder)
    settings = config.reset_settings(folder)
    settings.endpoints["fake"], settings.model = {"base_url": url}, "fake:bench"


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:  # wall s, process CPU s, result
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, time.process_time() - cpu0, result


def run_baseline(url: str, rows: list[str], concurrency: int) -> None:
    import openai

    async def main() -> None:
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(text: str) -> str | None:
                async with gate:
                    response = await client.chat.completions.create(model="bench", messages=message(text))
                    return response.choices[0].message.content

            await asyncio.gather(*(one(t) for t in rows))

    asyncio.run(main())


def run_batch(data: pd.DataFrame, concurrency: int) -> pd.DataFrame:
    with contextlib.redirect_stdout(io.StringIO()):  # the one-line summary batch prints
        return llmops_lab.batch(TEMPLATE, data, concurrency=concurrency, progress=False)


def child_main(args: argparse.Namespace) -> None:
    """``--child base|big|mlflow``: one measurement in a fresh interpreter; prints ``RESULT <json>``."""
    out: dict[str, Any] = {}
    if args.child in ("base", "big"):
        import mlflow  # noqa: F401 - the baseline child imports what the batch child will
        data = pd.DataFrame({"text": texts(args.big_rows)})
        if args.child == "big":
            use_project(Path(args.dir) / "big", args.url)
            out["wall"], _, results = timed(run_batch, data, args.concurrency)
            out["flush"], _, out["left"] = timed(llmops_lab.flush, 600)
            out.update(errors=int(results["error"].notna().sum()), run=llmops_lab.batch_run_id(results, timeout=1))
    else:
        os.environ.update(EVAL_ENV, MLFLOW_GENAI_EVAL_MAX_WORKERS=str(args.concurrency))
        import mlflow
        import openai
        from mlflow.genai.scorers import scorer
        mlflow.set_tracking_uri(f"sqlite:///{args.dir}/mlflow.db")
        exp = mlflow.set_experiment("evaluate-bench")
        client = openai.OpenAI(base_url=args.url, api_key="x", max_retries=0)

        def predict_fn(text: str) -> str | None:
            return client.chat.completions.create(model="bench", messages=message(text)).choices[0].message.content

        @scorer
        def nonempty(outputs: Any) -> bool:
            return bool(outputs)
        data = [{"inputs": {"text": t}} for t in texts(args.rows)]
        out["wall"] = timed(lambda: mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[nonempty]))[0]
        out["traces"] = len(mlflow.search_traces(locations=[exp.experiment_id], max_results=args.rows * 2))
    print("RESULT " + json.dumps(out), flush=True)


def spawn(args: argparse.Namespace, child: str, url: str, folder: Path) -> tuple[dict[str, Any] | None, float, str]:
    """Run a child; returns (its result or None, its peak RSS in MB, the tail of its stderr)."""
    cmd = [sys.executable, __file__, "--child", child, "--url", url, "--dir", str(folder), "--rows",
           str(args.rows), "--big-rows", str(args.big_rows), "--concurrency", str(args.concurrency)]
    folder.mkdir(exist_ok=True)
    with open(folder / f"{child}.stderr", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=folder)
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (not the fake server's)
        proc.returncode = os.waitstatus_to_exitcode(status)
    tail = "\n    ".join((folder / f"{child}.stderr").read_text().strip().splitlines()[-5:])
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    return (json.loads(line[7:]) if line and proc.returncode == 0 else None), usage.ru_maxrss / 1024, tail


def bench_throughput(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, bool]]:
    n, c, med = args.rows, args.concurrency, statistics.median
    ideal = c / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    rows, data = texts(n), pd.DataFrame({"text": texts(n)})
    rounds, landed, hits = [], [], []
    with fake_server(args.latency_ms) as url:
        use_project(tmp / "warmup", url)  # warm-up: imports, connections, the first MLflow store
        run_baseline(url, rows[:100], c)
        run_batch(data.head(100), c)
        llmops_lab.flush(600)
        for i in range(args.repeats):
            base_s, base_cpu, _ = timed(run_baseline, url, rows, c)
            use_project(tmp / f"run{i}", url)
            cold_s, cold_cpu, results = timed(run_batch, data, c)
            flush_s, _, left = timed(llmops_lab.flush, 600)
            landed.append(llmops_lab.batch_run_id(results, timeout=1) is not None and left == 0
                          and not results["error"].notna().any())
            warm_s, _, again = timed(run_batch, data, c)
            hits.append(bool(again["cached"].all()))
            rounds.append((base_s, 1000 * base_cpu / n, cold_s, 1000 * cold_cpu / n, flush_s, warm_s,
                           timed(llmops_lab.flush, 600)[0], os.getloadavg()[0]))
        tracking.shutdown(60)
        res, _, tail = spawn(args, "mlflow", url, tmp / "evaluate")
    bases, base_cpus, colds, cold_cpus, flushes, warms, warm_flushes, loads = map(list, zip(*rounds, strict=True))
    base, cold, warm = med(bases), med(colds), med(warms)
    ratio = 100 * base / cold

    def show(label: str, wall: float, extra: str) -> None:
        print(f"  {label:<26} {wall:6.2f} s {n / wall:5.0f} rows/s {100 * n / wall / ideal:5.1f} % of ideal  {extra}")

    def fmt(xs: list[float], places: int = 2) -> str:
        return " ".join(f"{x:.{places}f}" for x in xs)

    print(f"1. fake server at {args.latency_ms:g} ms, {n} rows, concurrency {c}: ideal {n / ideal:.2f} s = "
          f"{ideal:.0f} rows/s; {os.cpu_count()} CPUs; {args.repeats} alternating runs of (a) and (b), medians")
    show("(a) AsyncOpenAI+Semaphore", base, f"cpu {med(base_cpus):.2f} ms/row  runs {fmt(bases)}")
    show("(b) llmops_lab.batch", cold, f"cpu {med(cold_cpus):.2f} ms/row  runs {fmt(colds)}")
    print(f"  batch = {ratio:.1f} % of baseline rows/s (target >= {RATIO_TARGET:g} %); CPU "
          f"{med(cold_cpus) - med(base_cpus):+.2f} ms/row vs baseline; load average {fmt(loads, 1)}")
    print(f"  after the batch, flush() (background MLflow write): median {med(flushes):.2f} s "
          f"(runs {fmt(flushes)}); run landed (run id, 0 left, 0 errors): {sum(landed)}/{len(landed)}")
    if res is None:
        print(f"  (c) mlflow.genai.evaluate could not run here:\n    {tail}")
    else:
        show("(c) mlflow.genai.evaluate", res["wall"],
             f"once; {res['traces']} traces of {n} logged; batch is {res['wall'] / cold:.1f}x faster")
    print(f"\n2. warm cache re-run (same project, second call; all rows hits in {sum(hits)}/{len(hits)} runs):\n"
          f"  median {warm:.3f} s = {n / warm:,.0f} rows/s (runs {fmt(warms, 3)}); "
          f"its flush() median {med(warm_flushes):.2f} s", flush=True)
    return [(f"batch >= {RATIO_TARGET:g} % of baseline", f"{ratio:.1f} %", ratio >= RATIO_TARGET),
            ("batch run landed", f"{sum(landed)}/{len(landed)}", all(landed)),
            (f"warm cache >= {WARM_TARGET:,.0f} rows/s", f"{n / warm:,.0f} rows/s",
             n / warm >= WARM_TARGET and all(hits))]


def bench_memory(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, bool]]:
    big, name = args.big_rows, f"peak RSS {args.big_rows:,} rows <= {RSS_TARGET_MB:g} MB"
    with fake_server(0) as url:
        _, base_mb, _ = spawn(args, "base", url, tmp)
        res, big_mb, tail = spawn(args, "big", url, tmp)
    print(f"\n3. {big:,} rows at 0 ms, concurrency {args.concurrency}, trace_sample=20, then flush(), in a child:")
    if res is None:
        print(f"  FAILED:\n    {tail}")
        return [(name, f"{big_mb:.0f} MB (failed)", False)]
    ok = res["run"] is not None and res["left"] == 0 and res["errors"] == 0
    slow = " (over 3 minutes)" if res["wall"] > 180 else ""
    print(f"  batch {res['wall']:.1f} s = {big / res['wall']:,.0f} rows/s{slow}; flush() {res['flush']:.1f} s; "
          f"errors {res['errors']}; run landed: {'yes' if ok else 'NO'}\n"
          f"  peak RSS {big_mb:.0f} MB; baseline child (imports + {big:,}-row DataFrame) {base_mb:.0f} MB "
          f"-> batch + flush add {big_mb - base_mb:.0f} MB")
    return [(name, f"{big_mb:.0f} MB", big_mb <= RSS_TARGET_MB and ok)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, kind, default in (("--rows", int, 2000), ("--latency-ms", float, 50.0), ("--concurrency", int, 16),
                                ("--big-rows", int, 100_000), ("--repeats", int, 3)):
        p.add_argument(flag, type=kind, default=default)
    for flag in ("--child", "--url", "--dir"):  # internal: a child measurement
        p.add_argument(flag, help=argparse.SUPPRESS)
    args = p.parse_args()
    for key in ENV_DROP:
        os.environ.pop(key, None)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if args.child:
        return child_main(args)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmops-batch-bench-") as tmp:
        checks = bench_throughput(args, Path(tmp)) + bench_memory(args, Path(tmp))
    print("\nsummary:")
    for name, value, ok in checks:
        print(f"  {name:<36} {value:>14}  {'PASS' if ok else 'FAIL'}")
    print(f"\n(total {time.perf_counter() - t0:.0f} s; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
