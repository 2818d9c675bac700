"""Throughput and memory of ``llmops_lab.batch`` vs a lean aiohttp loop, an SDK loop and ``mlflow.genai.evaluate``.

Against ``tests/fake_openai.py`` in its own process; ideal wall time = rows x latency / concurrency.
1. For each ``--cases`` entry (rows x concurrency; default 2000x16 and 3000x64), in one process, alternated
   ``--repeats`` times, medians: (a) a lean loop: one ``aiohttp`` session (pool sized to the concurrency) +
   ``asyncio.Semaphore``, JSON encoded once per row; (a') ``openai.AsyncOpenAI(max_retries=0)`` + semaphore;
   (b) ``llmops_lab.batch`` with tracking on and ``cache=False`` (fresh project per run: new sqlite store);
   targets (b) >= 95 % of (a)'s rows/s at c <= 16, >= 90 % above. (b') the same batch with the cache on
   (empty: every answer is written), then it again (all hits: part 2). (b)'s time is what the caller waits
   for; the MLflow write runs after it in the background, timed as ``flush()``; then ``batch_run_id`` must
   give a run id. CPU per row is shown too: unlike wall time it barely moves when other processes share the
   CPUs. ``--evaluate``: (c) once, in a child, for the first case: ``mlflow.genai.evaluate``, sync
   ``openai.OpenAI`` predict_fn, one trivial scorer, own sqlite store, ``MLFLOW_GENAI_EVAL_MAX_WORKERS`` =
   concurrency, predict rate limit off (its "auto" starts at 10 rows/s), SQLAlchemy pool 40 (the default 5+10
   starves 16 threads and drops traces).
2. Warm cache: after each cold cached batch, the same call again in its project (all hits); target >= 2,000
   rows/s.
3. ``--memory``: peak RSS (``os.wait4``) of a child running a ``--big-rows`` batch at 0 ms, then ``flush()``;
   target <= 500 MB. Context: a child that only imports llmops_lab, pandas and mlflow and builds the same
   DataFrame.
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
RATIO_TARGET, RATIO_TARGET_HIGH, WARM_TARGET, RSS_TARGET_MB = 95.0, 90.0, 2000.0, 500.0
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


def run_lean(url: str, rows: list[str], concurrency: int) -> None:
    """The client-side limit: what a hand-written aiohttp loop reaches (no retries, no bookkeeping)."""
    import aiohttp

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            gate = asyncio.Semaphore(concurrency)
            headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}

            async def one(text: str) -> str | None:
                body = json.dumps({"model": "bench", "messages": message(text)}).encode()
                async with gate, session.post(f"{url}/chat/completions", data=body, headers=headers) as response:
                    return json.loads(await response.read())["choices"][0]["message"]["content"]

            await asyncio.gather(*(one(t) for t in rows))

    asyncio.run(main())


def run_batch(data: pd.DataFrame, concurrency: int, cache: bool = True) -> pd.DataFrame:
    with contextlib.redirect_stdout(io.StringIO()):  # the one-line summary batch prints
        return llmops_lab.batch(TEMPLATE, data, concurrency=concurrency, progress=False, cache=cache)


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


def spawn(args: argparse.Namespace, child: str, url: str, folder: Path, rows: int,
          concurrency: int) -> tuple[dict[str, Any] | None, float, str]:
    """Run a child; returns (its result or None, its peak RSS in MB, the tail of its stderr)."""
    cmd = [sys.executable, __file__, "--child", child, "--url", url, "--dir", str(folder), "--rows",
           str(rows), "--big-rows", str(args.big_rows), "--concurrency", str(concurrency)]
    folder.mkdir(exist_ok=True)
    with open(folder / f"{child}.stderr", "w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=folder)
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS (not the fake server's)
        proc.returncode = os.waitstatus_to_exitcode(status)
    tail = "\n    ".join((folder / f"{child}.stderr").read_text().strip().splitlines()[-5:])
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    return (json.loads(line[7:]) if line and proc.returncode == 0 else None), usage.ru_maxrss / 1024, tail


def target_for(concurrency: int) -> float:
    return RATIO_TARGET if concurrency <= 16 else RATIO_TARGET_HIGH


def bench_throughput(args: argparse.Namespace, tmp: Path, n: int, c: int, first: bool) -> list[tuple[str, str, bool]]:
    med = statistics.median
    ideal = c / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    rows, data = texts(n), pd.DataFrame({"text": texts(n)})
    rounds, landed, hits = [], [], []
    with fake_server(args.latency_ms) as url:
        use_project(tmp / f"warmup{c}", url)  # warm-up: imports, connections, the first MLflow store
        run_lean(url, rows[:100], c)
        run_baseline(url, rows[:100], c)
        run_batch(data.head(100), c, False)
        llmops_lab.flush(600)
        for i in range(args.repeats):
            lean_s, lean_cpu, _ = timed(run_lean, url, rows, c)
            sdk_s, sdk_cpu, _ = timed(run_baseline, url, rows, c)
            use_project(tmp / f"run{c}-{i}", url)
            cold_s, cold_cpu, results = timed(run_batch, data, c, False)
            flush_s, _, left = timed(llmops_lab.flush, 600)
            landed.append(llmops_lab.batch_run_id(results, timeout=1) is not None and left == 0
                          and not results["error"].notna().any())
            cached_s, cached_cpu, _ = timed(run_batch, data, c, True)
            timed(llmops_lab.flush, 600)
            warm_s, _, again = timed(run_batch, data, c, True)
            hits.append(bool(again["cached"].all()))
            rounds.append((lean_s, 1000 * lean_cpu / n, sdk_s, 1000 * sdk_cpu / n, cold_s, 1000 * cold_cpu / n,
                           cached_s, 1000 * cached_cpu / n, flush_s, warm_s, timed(llmops_lab.flush, 600)[0],
                           os.getloadavg()[0]))
        tracking.shutdown(60)
        res = spawn(args, "mlflow", url, tmp / "evaluate", n, c)[::2] if args.evaluate and first else None
    (leans, lean_cpus, sdks, sdk_cpus, colds, cold_cpus, cacheds, cached_cpus, flushes, warms, warm_flushes,
     loads) = map(list, zip(*rounds, strict=True))
    lean, sdk, cold, cached, warm = med(leans), med(sdks), med(colds), med(cacheds), med(warms)
    ratio, target = 100 * lean / cold, target_for(c)

    def show(label: str, wall: float, extra: str) -> None:
        print(f"  {label:<30} {wall:6.2f} s {n / wall:5.0f} rows/s {100 * n / wall / ideal:5.1f} % of ideal  {extra}")

    def fmt(xs: list[float], places: int = 2) -> str:
        return " ".join(f"{x:.{places}f}" for x in xs)

    print(f"\n1. fake server at {args.latency_ms:g} ms, {n} rows, concurrency {c}: ideal {n / ideal:.2f} s = "
          f"{ideal:.0f} rows/s; {os.cpu_count()} CPUs; {args.repeats} alternating rounds, medians")
    show("(a) lean aiohttp loop", lean, f"cpu {med(lean_cpus):.2f} ms/row  runs {fmt(leans)}")
    show("(a') AsyncOpenAI+Semaphore", sdk, f"cpu {med(sdk_cpus):.2f} ms/row  runs {fmt(sdks)}")
    show("(b) batch, tracking, cache off", cold, f"cpu {med(cold_cpus):.2f} ms/row  runs {fmt(colds)}")
    show("(b') batch, cache on (empty)", cached, f"cpu {med(cached_cpus):.2f} ms/row  runs {fmt(cacheds)}")
    print(f"  batch = {ratio:.1f} % of the lean loop's rows/s (target >= {target:g} %), {100 * sdk / cold:.1f} % "
          f"of the SDK loop's; the SDK loop = {100 * lean / sdk:.1f} % of the lean loop's; CPU "
          f"{med(cold_cpus) - med(lean_cpus):+.2f} ms/row vs the lean loop; load average {fmt(loads, 1)}")
    print(f"  after the batch, flush() (background MLflow write): median {med(flushes):.2f} s "
          f"(runs {fmt(flushes)}); run landed (run id, 0 left, 0 errors): {sum(landed)}/{len(landed)}")
    if res is not None:
        out, tail = res
        if out is None:
            print(f"  (c) mlflow.genai.evaluate could not run here:\n    {tail}")
        else:
            show("(c) mlflow.genai.evaluate", out["wall"],
                 f"once; {out['traces']} traces of {n} logged; batch is {out['wall'] / cold:.1f}x faster")
    print(f"2. warm cache re-run (same project, second call; all rows hits in {sum(hits)}/{len(hits)} runs): "
          f"median {warm:.3f} s = {n / warm:,.0f} rows/s (runs {fmt(warms, 3)}); "
          f"its flush() median {med(warm_flushes):.2f} s", flush=True)
    return [(f"c={c}: batch >= {target:g} % of lean loop", f"{ratio:.1f} %", ratio >= target),
            (f"c={c}: batch run landed", f"{sum(landed)}/{len(landed)}", all(landed)),
            (f"c={c}: warm cache >= {WARM_TARGET:,.0f} rows/s", f"{n / warm:,.0f} rows/s",
             n / warm >= WARM_TARGET and all(hits))]


def bench_memory(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, bool]]:
    big, name = args.big_rows, f"peak RSS {args.big_rows:,} rows <= {RSS_TARGET_MB:g} MB"
    with fake_server(0) as url:
        _, base_mb, _ = spawn(args, "base", url, tmp, 0, args.concurrency)
        res, big_mb, tail = spawn(args, "big", url, tmp, 0, args.concurrency)
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
    for flag, kind, default in (("--latency-ms", float, 50.0), ("--big-rows", int, 100_000), ("--repeats", int, 3)):
        p.add_argument(flag, type=kind, default=default)
    p.add_argument("--cases", default="2000x16,3000x64", help="rows x concurrency, comma-separated")
    p.add_argument("--concurrency", type=int, default=16, help="of the --memory batch")
    p.add_argument("--evaluate", action="store_true", help="also time mlflow.genai.evaluate (about 4 minutes)")
    p.add_argument("--memory", action="store_true", help="also the --big-rows peak RSS (about 10 minutes)")
    for flag in ("--child", "--url", "--dir"):  # internal: a child measurement
        p.add_argument(flag, help=argparse.SUPPRESS)
    p.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    for key in ENV_DROP:
        os.environ.pop(key, None)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if args.child:
        return child_main(args)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmops-batch-bench-") as tmp:
        cases = [tuple(int(x) for x in case.split("x")) for case in args.cases.split(",")]
        checks = [check for i, (n, c) in enumerate(cases) for check in bench_throughput(args, Path(tmp), n, c, i == 0)]
        if args.memory:
            checks += bench_memory(args, Path(tmp))
    print("\nsummary:")
    for name, value, ok in checks:
        print(f"  {name:<36} {value:>14}  {'PASS' if ok else 'FAIL'}")
    print(f"\n(total {time.perf_counter() - t0:.0f} s; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
