"""What llmops-lab adds to a model call, measured against a bare ``openai`` SDK call in the same run.

1. Per call, against ``tests/fake_openai.py`` (0 ms latency, in a subprocess so its CPU stays out of
   this process), tracking on, MLflow sqlite store in a temporary project. Variants: ``bare sdk``
   (``openai.OpenAI(...).chat.completions.create``), ``sdk cell`` (the same call as an IPython cell:
   IPython's own cost), ``%%llm`` (a ``--format text`` cell in a real InteractiveShell; its output goes
   to a null stream but is still produced) and ``run()``; interleaved after a warm-up, order rotated
   each round, so drift hits all alike. ``added`` = median - bare sdk median; target <= 5 ms. The
   MLflow writer thread competes for the GIL meanwhile; that is real cost and kept in (it slows the
   bare call too: ``bare idle`` is the bare call timed before any tracked call, for comparison).
   Then flush(): time for the writer to drain its backlog; MLflow must hold one run per tracked call.
2. ``%load_ext llmops_lab`` in fresh interpreters: spawn-to-after-load wall time minus the same script
   without the load (medians); target <= 0.3 s. Heavy modules loaded by it should be none; for any
   that are, the import chain pulling it in is printed (``python -X importtime``).

Usage: python benchmarks/overhead.py [--calls 300] [--warmup 20] [--load-runs 7] [--profile]
Always exits 0: a benchmark reports, it does not gate.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "openai", "llama_cpp", "pandas", "papermill", "nbformat")
CALL_TARGET_MS, LOAD_TARGET_S = 5.0, 0.3
CELL = "%%llm --name bench --max-tokens 8 --format text\nSay {{ word }}"
ENV_DROP = ("MLFLOW_TRACKING_URI", "LLMOPS_HOME", "LLMOPS_MODEL", "LLMOPS_EXPERIMENT", "LLMOPS_NOTEBOOK",
            "LLMOPS_TRACKING", "OPENAI_BASE_URL", "OPENAI_API_KEY", "JPY_SESSION_NAME")


@dataclass
class CallRun:
    idle: list[float]
    samples: dict[str, list[float]]
    loop_s: float
    backlog: int
    left: int
    drain_s: float
    tracked: int
    runs: tuple[int, int]  # (all, finished)
    profile: str


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["IPYTHONDIR"] = str(tmp / "ipython")  # IPython history/profile out of the user's home
    return env


def fresh_project(tmp: Path, name: str) -> Path:
    project = tmp / name
    project.mkdir()
    (project / "llmops.toml").write_text("")
    return project


@contextlib.contextmanager
def fake_server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", "0",
                             "--latency-ms", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "FAIL"


# -- 1. per-call overhead ---------------------------------------------------------------------------
def make_variants(url: str, shell: Any) -> dict[str, Callable[[], object]]:
    import openai

    import llmops_lab

    client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "Say hello"}]
    shell.user_ns.update(word="hello", client=client, messages=messages)
    sdk_cell = "r = client.chat.completions.create(model='bench', messages=messages, max_tokens=8)"
    return {
        "bare sdk": lambda: client.chat.completions.create(model="bench", messages=messages, max_tokens=8),
        "sdk cell": lambda: shell.run_cell(sdk_cell),
        "%%llm": lambda: shell.run_cell(CELL),
        "run()": lambda: llmops_lab.run("Say {{ word }}", {"word": "hello"}, name="bench", max_tokens=8),
    }


def interleave(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per call; each round runs every variant once, starting one further along."""
    names = list(variants)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for i in range(rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter_ns()
            variants[name]()
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def count_runs(experiment: str) -> tuple[int, int]:
    from mlflow import MlflowClient

    import llmops_lab

    client = MlflowClient(tracking_uri=llmops_lab.get_settings().resolved_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=50000) if exp else []
    return len(runs), sum(r.info.status == "FINISHED" for r in runs)


def profile_magic(shell: Any, calls: int) -> str:
    """cProfile of ``calls`` cells: llmops_lab's own functions (and display) by cumulative time."""
    prof = cProfile.Profile()
    prof.runcall(lambda: [shell.run_cell(CELL) for _ in range(calls)])
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(r"llmops_lab/|display_functions", 15)
    return out.getvalue()


def measure_calls(tmp: Path, calls: int, warmup: int, profile: bool) -> CallRun:
    for key in ENV_DROP:
        os.environ.pop(key, None)
    os.environ["IPYTHONDIR"] = str(tmp / "ipython")
    os.chdir(project := fresh_project(tmp, "calls"))
    import llmops_lab
    from IPython.core.interactiveshell import InteractiveShell

    from llmops_lab import config, tracking

    config.reset_settings(project)
    with fake_server() as url, contextlib.redirect_stdout(open(os.devnull, "w")):
        llmops_lab.get_settings().endpoints["fake"] = {"base_url": url}
        llmops_lab.configure(model="fake:bench", experiment="overhead-bench")
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "llmops_lab")
        variants = make_variants(url, shell)
        idle = interleave({"idle": variants["bare sdk"]}, warmup + calls)["idle"][warmup:]
        if not (first := shell.run_cell(CELL)).success:
            raise RuntimeError(f"%%llm cell failed: {first.error_in_exec or first.error_before_exec}")
        interleave(variants, warmup)
        t0 = time.perf_counter()
        samples = interleave(variants, calls)
        loop_s = time.perf_counter() - t0
        tracker = tracking.get_tracker()
        backlog = tracker.spool.appended - tracker.written
        t0 = time.perf_counter()
        left = llmops_lab.flush(timeout=600)
        drain_s = time.perf_counter() - t0
        prof = profile_magic(shell, 100) if profile else ""
        llmops_lab.flush(timeout=600)
        tracking.shutdown(5)
        runs = count_runs("overhead-bench")
        shell.atexit_operations()  # close IPython's history db before the temp dir goes, once
        atexit.unregister(shell.atexit_operations)
    tracked = 1 + 2 * (warmup + calls) + (100 if profile else 0)
    return CallRun(idle, samples, loop_s, backlog, left, drain_s, tracked, runs, prof)


def report_calls(m: CallRun, calls: int, warmup: int) -> list[str]:
    bare, bare_idle = statistics.median(m.samples["bare sdk"]), statistics.median(m.idle)
    lines = [f"per call, fake server at 0 ms, {calls} calls/variant interleaved after {warmup} warm-up, "
             f"loop {m.loop_s:.1f} s"]
    for name, xs in [("bare idle", m.idle), *m.samples.items()]:
        med, p95 = statistics.median(xs), statistics.quantiles(xs, n=20)[-1]
        line = f"  {name:<9} median {med:6.2f} ms  p95 {p95:6.2f} ms"
        if name == "sdk cell":
            line += f"  added {med - bare:+6.2f} ms  (IPython's own cell cost, for reference)"
        elif name in ("%%llm", "run()"):
            line += (f"  added {med - bare:+6.2f} ms (target <= {CALL_TARGET_MS:g} ms)  "
                     f"{verdict(med - bare, CALL_TARGET_MS)}  [vs bare idle {med - bare_idle:+.2f} ms]")
        lines.append(line)
    (total, finished), ok = m.runs, m.left == 0 and m.runs == (m.tracked, m.tracked)
    lines.append(f"  tracking: backlog {m.backlog} records at loop end, flush() drained in {m.drain_s:.1f} s "
                 f"({m.left} left); MLflow runs {total} (finished {finished}) for {m.tracked} tracked calls  "
                 f"{'PASS' if ok else 'FAIL'}")
    if m.profile:
        lines += ["", "cProfile of 100 %%llm cells (main thread, llmops_lab functions, cumulative):", m.profile]
    return lines


# -- 2. %load_ext time ------------------------------------------------------------------------------
def child_code(load: bool) -> str:
    body = 'sh.run_line_magic("load_ext", "llmops_lab")\n' if load else ""
    return ("import sys, time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "sh = InteractiveShell.instance()\nt = time.perf_counter()\n" + body +
            "d = time.perf_counter() - t\nnow = time.time()\n"
            f"print(repr(now), repr(d), ','.join(m for m in {HEAVY!r} if m in sys.modules))\n")


def spawn(code: str, cwd: Path, env: dict[str, str]) -> tuple[float, float, list[str]]:
    """(spawn to end of the script's timed part, in-process load time, heavy modules), in seconds."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]) - t0, float(out[1]), (out[2].split(",") if len(out) > 2 else [])


def import_chain(module: str, code: str, cwd: Path, env: dict[str, str]) -> str:
    """``module <- importer <- ...`` (in -X importtime output a parent follows its children, less indented)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, env=env,
                         capture_output=True, text=True).stderr.splitlines()
    rows = [line.split("|")[-1] for line in err if line.startswith("import time:") and "|" in line][1:]
    parsed = [(len(r) - len(r.lstrip()), r.strip()) for r in rows]
    start = next((i for i, (_, name) in enumerate(parsed) if name == module), None)
    if start is None:
        return f"{module}: not seen by -X importtime (imported in a thread, or by exec?)"
    chain, depth = [module], parsed[start][0]
    for indent, name in parsed[start + 1:]:
        if indent < depth:
            chain.append(name)
            depth = indent
    return " <- ".join(chain)


def bench_load(tmp: Path, runs: int) -> list[str]:
    project, env = fresh_project(tmp, "load"), clean_env(tmp)
    spawn(child_code(True), project, env)  # warm the OS file cache once
    base, load, inproc, heavy = [], [], [], set()
    for _ in range(runs):
        base.append(spawn(child_code(False), project, env)[0])
        wall, alone, mods = spawn(child_code(True), project, env)
        load.append(wall), inproc.append(alone), heavy.update(mods)
    added = statistics.median(load) - statistics.median(base)
    lines = [f"%load_ext llmops_lab, {runs} fresh interpreters each",
             f"  baseline (python -c + IPython shell)  median {statistics.median(base):.3f} s",
             f"  with %load_ext                        median {statistics.median(load):.3f} s",
             f"  added {added:+.3f} s (target <= {LOAD_TARGET_S:g} s)  {verdict(added, LOAD_TARGET_S)}"
             f"   [in-process load_ext alone: median {statistics.median(inproc) * 1000:.0f} ms]",
             f"  heavy modules after load: {', '.join(sorted(heavy)) or 'none'}"]
    return lines + [f"    {import_chain(m, child_code(True), project, env)}" for m in sorted(heavy)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up calls per variant")
    parser.add_argument("--load-runs", type=int, default=7, help="fresh interpreters per load_ext variant")
    parser.add_argument("--profile", action="store_true", help="also cProfile 100 %%llm cells")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        lines = bench_load(Path(tmp), args.load_runs) + [""]
        lines += report_calls(measure_calls(Path(tmp), args.calls, args.warmup, args.profile), args.calls,
                              args.warmup)
        os.chdir(REPO)
    print("\n".join(lines))
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
