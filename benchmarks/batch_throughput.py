"""Throughput and memory of ``llmops_lab.batch``, against a plain asyncio loop and ``mlflow.genai.evaluate``.

Everything runs against ``tests/fake_openai.py`` in its own process (so its CPU is not ours). The ideal
wall time is rows x latency / concurrency: what a loop with no CPU cost of its own would reach.

1. Cold batch, ``--rows`` distinct texts, ``--latency-ms``, ``--concurrency``; (a) and (b) alternate 3 times
   (medians reported):
     (a) baseline  ``openai.AsyncOpenAI(max_retries=0)`` + ``asyncio.Semaphore`` over the same messages
     (b) batch     ``llmops_lab.batch(...)``, tracking on, fresh project (empty cache, new sqlite store),
                   ``progress=False``. Its wall time is what the caller waits for; the MLflow write runs
                   after it in the background and is timed separately as ``flush()``, after which
                   ``batch_run_id(results)`` must be a run id.
     (c) ``mlflow.genai.evaluate`` once, in a child process with its own sqlite store: a sync
         ``openai.OpenAI`` predict_fn, one trivial scorer, ``MLFLOW_GENAI_EVAL_MAX_WORKERS`` = concurrency
         and ``MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT=0`` (its default "auto" starts at 10 rows/s).
   Target: batch rows/s >= 95 % of the baseline's.
2. Warm cache: right after each cold batch (and its flush), the same call again in the same project:
   every row is a cache hit. Target: >= 2,000 rows/s (median of 3).
3. Peak RSS (``ru_maxrss`` from ``os.wait4``) of a child running a ``--big-rows`` batch at 0 ms latency
   (``trace_sample=20``) followed by ``flush()``, so the writer's staging and results table count.
   Target <= 500 MB. For context: a child that only imports llmops_lab, pandas and mlflow and builds
   the same DataFrame.

Usage: python benchmarks/batch_throughput.py [--rows 2000] [--latency-ms 50] [--concurrency 16]
                                             [--big-rows 100000]
Always exits 0: a benchmark reports, it does not gate.
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
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "Classify the sentiment of this review: {{ text }}"
RATIO_TARGET, WARM_TARGET, RSS_TARGET_MB = 95.0, 2000.0, 500.0
ENV_DROP = ("MLFLOW_TRACKING_URI", "LLMOPS_HOME", "LLMOPS_MODEL", "LLMOPS_EXPERIMENT", "LLMOPS_NOTEBOOK",
            "LLMOPS_TRACKING", "OPENAI_BASE_URL", "OPENAI_API_KEY", "JPY_SESSION_NAME")
WORDS = "good bad fine awful great slow fast cheap broken lovely noisy quiet".split()


def texts(n: int) -> list[str]:
    """``n`` distinct review texts (no two rows share a cache key)."""
    return [f"Review {i}: the product was {WORDS[i % 12]} and {WORDS[(i // 12) % 12]}, delivery "
            f"{WORDS[(i // 144) % 12]}." for i in range(n)]


def frame(n: int) -> Any:
    import pandas as pd

    return pd.DataFrame({"text": texts(n)})


@contextlib.contextmanager
def fake_server(latency_ms: float) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", "0",
                             "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def use_project(folder: Path, url: str) -> None:
    """Point llmops_lab at a fresh project in ``folder`` (the old writer is flushed and stopped first)."""
    from llmops_lab import config, get_settings, tracking

    tracking.shutdown(60)
    folder.mkdir(parents=True)
    (folder / "llmops.toml").write_text("")
    os.chdir(folder)
    config.reset_settings(folder)
    settings = get_settings()
    settings.endpoints["fake"] = {"base_url": url}
    settings.model = "fake:bench"


def run_baseline(url: str, rows: list[str], concurrency: int) -> float:
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(text: str) -> str | None:
            async with gate:
                messages = [{"role": "user", "content": TEMPLATE.replace("{{ text }}", text)}]
                response = await client.chat.completions.create(model="bench", messages=messages)
                return response.choices[0].message.content

        await asyncio.gather(*(one(t) for t in rows))
        await client.close()

    t0 = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0


def run_batch(data: Any, concurrency: int, **kw: Any) -> tuple[float, Any]:
    import llmops_lab

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the one-line summary batch prints
        results = llmops_lab.batch(TEMPLATE, data, concurrency=concurrency, progress=False, **kw)
    return time.perf_counter() - t0, results


def timed_flush() -> tuple[float, int]:
    import llmops_lab

    t0 = time.perf_counter()
    left = llmops_lab.flush(timeout=600)
    return time.perf_counter() - t0, left


# -- child processes ------------------------------------------------------------------------------
def child_main(args: argparse.Namespace) -> None:
    """``--child big|base|mlflow``: one measurement in a fresh interpreter; prints one JSON line."""
    out: dict[str, Any] = {}
    if args.child == "base":
        import mlflow  # noqa: F401
        import pandas  # noqa: F401

        import llmops_lab  # noqa: F401

        frame(args.big_rows)
    elif args.child == "big":
        import llmops_lab

        use_project(Path(args.dir) / "big", args.url)
        wall, results = run_batch(frame(args.big_rows), args.concurrency)
        flush_s, left = timed_flush()
        out = {"wall": wall, "flush": flush_s, "left": left, "errors": int(results["error"].notna().sum()),
               "run": llmops_lab.batch_run_id(results, timeout=1)}
    else:
        import mlflow
        import openai
        from mlflow.genai.scorers import scorer

        mlflow.set_tracking_uri(f"sqlite:///{args.dir}/mlflow.db")
        exp = mlflow.set_experiment("evaluate-bench")
        client = openai.OpenAI(base_url=args.url, api_key="x", max_retries=0)

        def predict_fn(text: str) -> str | None:
            messages = [{"role": "user", "content": TEMPLATE.replace("{{ text }}", text)}]
            return client.chat.completions.create(model="bench", messages=messages).choices[0].message.content

        @scorer
        def nonempty(outputs: Any) -> bool:
            return bool(outputs)

        data = [{"inputs": {"text": t}} for t in texts(args.rows)]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[nonempty])
        out["wall"] = time.perf_counter() - t0
        out["traces"] = len(mlflow.search_traces(locations=[exp.experiment_id], max_results=args.rows * 2))
    print("RESULT " + json.dumps(out), flush=True)


def spawn(args: argparse.Namespace, child: str, url: str, folder: Path,
          env: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, float, str]:
    """Run a child; returns (its result or None, its peak RSS in MB, the tail of its stderr)."""
    cmd = [sys.executable, __file__, "--child", child, "--url", url, "--dir", str(folder), "--rows",
           str(args.rows), "--big-rows", str(args.big_rows), "--concurrency", str(args.concurrency)]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=folder,
                                env={**os.environ, **(env or {})})
        stdout = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = "\n".join(err.read().strip().splitlines()[-5:])
    line = next((x for x in stdout.splitlines() if x.startswith("RESULT ")), None)
    result = json.loads(line[7:]) if line and proc.returncode == 0 else None
    return result, usage.ru_maxrss / 1024, tail


# -- the benchmark --------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--latency-ms", type=float, default=50)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--big-rows", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", choices=("big", "base", "mlflow"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    for key in ENV_DROP:
        os.environ.pop(key, None)
    if args.child:
        return child_main(args)
    t_start, n, c = time.perf_counter(), args.rows, args.concurrency
    ideal_rps = c / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    rows, data = texts(n), frame(n)
    checks: list[tuple[str, str, bool]] = []
    out: list[str] = [f"fake server at {args.latency_ms:g} ms, {n} rows, concurrency {c}: ideal "
                      f"{n / ideal_rps:.2f} s = {ideal_rps:.0f} rows/s; {os.cpu_count()} CPUs"]

    def line(label: str, wall: float, extra: str = "") -> str:
        return (f"  {label:<26} {wall:7.2f} s  {n / wall:7.0f} rows/s  {100 * n / wall / ideal_rps:5.1f} % of ideal"
                + extra)

    with tempfile.TemporaryDirectory(prefix="llmops-batch-bench-") as tmp_name, fake_server(args.latency_ms) as url:
        tmp = Path(tmp_name)
        import llmops_lab

        run_baseline(url, rows[:100], c)  # warm-up: imports, connections, first MLflow store
        use_project(tmp / "warmup", url)
        run_batch(data.head(100), c)
        timed_flush()
        base_s, cold_s, warm_s, flush_s, flush_warm_s, landed, hits = [], [], [], [], [], [], []
        for i in range(args.repeats):
            base_s.append(run_baseline(url, rows, c))
            use_project(tmp / f"run{i}", url)
            wall, results = run_batch(data, c)
            cold_s.append(wall)
            errors = int(results["error"].notna().sum())
            f_s, left = timed_flush()
            flush_s.append(f_s)
            landed.append(llmops_lab.batch_run_id(results, timeout=1) is not None and left == 0 and errors == 0)
            wall, again = run_batch(data, c)
            warm_s.append(wall)
            hits.append(bool(again["cached"].all()))
            flush_warm_s.append(timed_flush()[0])
        llmops_lab.tracking.shutdown(60)
        os.chdir(REPO)
        base, cold = statistics.median(base_s), statistics.median(cold_s)
        ratio = 100 * base / cold
        out += [f"cold batch vs baseline, {args.repeats} alternating runs each (medians):",
                line("(a) AsyncOpenAI+Semaphore", base, "   runs " + " ".join(f"{x:.2f}" for x in base_s)),
                line("(b) llmops_lab.batch", cold, "   runs " + " ".join(f"{x:.2f}" for x in cold_s)),
                f"  batch = {ratio:.1f} % of baseline rows/s (target >= {RATIO_TARGET:g} %)",
                f"  after the batch, flush() (background MLflow write): median {statistics.median(flush_s):.2f} s "
                f"(runs {' '.join(f'{x:.2f}' for x in flush_s)}); run landed in all {args.repeats}: "
                f"{'yes' if all(landed) else 'NO'}"]
        checks += [(f"batch >= {RATIO_TARGET:g} % of baseline", f"{ratio:.1f} %", ratio >= RATIO_TARGET),
                   ("batch run landed (run id, 0 left)", f"{sum(landed)}/{len(landed)}", all(landed))]

        env = {"MLFLOW_GENAI_EVAL_MAX_WORKERS": str(c), "MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT": "0"}
        (tmp / "evaluate").mkdir()
        res, _, tail = spawn(args, "mlflow", url, tmp / "evaluate", env)
        if res is None:
            out.append(f"  (c) mlflow.genai.evaluate could not run here:\n    {tail.replace(chr(10), chr(10) + '    ')}")
        else:
            out += [line("(c) mlflow.genai.evaluate", res["wall"], f"   once; {res['traces']} traces logged "
                         f"of {n}; batch is {res['wall'] / cold:.1f}x faster")]

        warm = statistics.median(warm_s)
        out += ["", f"warm cache re-run (same project, every row a hit), {args.repeats} runs:",
                f"  median {warm:.3f} s = {n / warm:,.0f} rows/s (runs {' '.join(f'{x:.3f}' for x in warm_s)}); "
                f"all rows hits: {'yes' if all(hits) else 'NO'}; its flush() median {statistics.median(flush_warm_s):.2f} s"]
        checks.append((f"warm cache >= {WARM_TARGET:,.0f} rows/s", f"{n / warm:,.0f} rows/s", n / warm >= WARM_TARGET and all(hits)))

    with tempfile.TemporaryDirectory(prefix="llmops-batch-big-") as tmp_name, fake_server(0) as url:
        tmp, big = Path(tmp_name), args.big_rows
        _, base_mb, _ = spawn(args, "base", url, tmp)
        res, big_mb, tail = spawn(args, "big", url, tmp)
        out += ["", f"{big:,} rows at 0 ms latency, concurrency {c}, trace_sample=20, then flush(), in a child:"]
        if res is None:
            out.append(f"  FAILED:\n    {tail}")
            checks.append((f"peak RSS {big:,} rows <= {RSS_TARGET_MB:g} MB", f"{big_mb:.0f} MB (failed)", False))
        else:
            ok = res["run"] is not None and res["left"] == 0 and res["errors"] == 0
            out += [f"  batch {res['wall']:.1f} s = {big / res['wall']:,.0f} rows/s"
                    f"{'  (over 3 minutes)' if res['wall'] > 180 else ''}; flush() {res['flush']:.1f} s; "
                    f"errors {res['errors']}; run landed: {'yes' if ok else 'NO'}",
                    f"  peak RSS {big_mb:.0f} MB; baseline child (imports + {big:,}-row DataFrame) {base_mb:.0f} MB"
                    f" -> batch adds {big_mb - base_mb:.0f} MB"]
            checks.append((f"peak RSS {big:,} rows <= {RSS_TARGET_MB:g} MB", f"{big_mb:.0f} MB",
                           big_mb <= RSS_TARGET_MB and ok))
    print("\n".join(out))
    print("\nsummary:")
    for name, value, ok in checks:
        print(f"  {name:<36} {value:>14}  {'PASS' if ok else 'FAIL'}")
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
