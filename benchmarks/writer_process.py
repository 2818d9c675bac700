"""MLflow written outside the kernel: start-up, memory and backlog, thread writer against process writer.

Real processes throughout, against ``tests/fake_openai.py`` (0 ms latency, its own process), in a temporary
project whose sqlite store is created before anything is timed.

1. **Start-up.** Wall time of a whole 1-row tracked script (``import llmops_lab; llmops_lab.run(...)``)
   against a bare SDK script (``import openai; OpenAI(...).chat.completions.create(...)``), alternated, after a
   warm-up; medians. ``added`` = script - bare; target <= 1 s. With the process writer the script exits at
   once and its record reaches MLflow from the writer (time to reach MLflow printed); with the thread writer
   the script's exit flush imports MLflow and writes first.
2. **Memory.** RSS of a kernel (a real IPython InteractiveShell in a fresh interpreter) after ``%load_ext``
   + 20 tracked ``%%llm`` calls + ``flush()``, against a kernel that made one bare openai call; medians of
   3 kernels each. Target: <= +40 MB.
3. **Backlog.** In one kernel: bare SDK call latency idle, then while 500 tracked records drain (the calls
   timed until the backlog is written); medians. Target: within 1 ms of idle.

Usage: python benchmarks/writer_process.py [--runs 7] [--kernels 3] [--backlog 500] [--only startup,memory,backlog]
Always exits 0: a benchmark reports, it does not gate.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTUP_TARGET_S, MEMORY_TARGET_MB, BACKLOG_TARGET_MS = 1.0, 40.0, 1.0
WRITERS = ["thread", "process"]

BARE_SCRIPT = """
import openai
c = openai.OpenAI(base_url={url!r}, api_key="x", max_retries=0)
c.chat.completions.create(model="m", messages=[{{"role": "user", "content": "hello 1"}}], max_tokens=8)
"""
RUN_SCRIPT = """
import llmops_lab
llmops_lab.run("hello {{{{ x }}}}", {{"x": 1}}, model="fake:m", name="startup", max_tokens=8)
"""
KERNEL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if {tracked}:
    ip.run_line_magic("load_ext", "llmops_lab")
    import io, contextlib, llmops_lab
    with contextlib.redirect_stdout(io.StringIO()):
        for i in range(20):
            ip.user_ns["i"] = i
            ip.run_cell_magic("llm", "fake:m --name mem --no-stream --format text --max-tokens 8", "call {{{{ i }}}}")
    left = llmops_lab.flush(300)
else:
    import openai
    c = openai.OpenAI(base_url={url!r}, api_key="x", max_retries=0)
    c.chat.completions.create(model="m", messages=[{{"role": "user", "content": "hi"}}], max_tokens=8)
    left = 0
print(json.dumps({{"rss_mb": rss_mb(), "left": left, "mlflow": "mlflow" in sys.modules}}))
"""
BACKLOG = """
import json, statistics, time
import openai, llmops_lab
from llmops_lab import tracking
c = openai.OpenAI(base_url={url!r}, api_key="x", max_retries=0)
msgs = [{{"role": "user", "content": "hi"}}]

def bare():
    t = time.perf_counter()
    c.chat.completions.create(model="m", messages=msgs, max_tokens=8)
    return (time.perf_counter() - t) * 1000

for _ in range(30):
    bare()
llmops_lab.run("warm {{{{ x }}}}", {{"x": 0}}, model="fake:m", name="backlog")
assert tracking.flush(300) == 0  # the writer runs, the store and experiment exist
idle = [bare() for _ in range(300)]
records = [llmops_lab.run("backlog {{{{ i }}}}", {{"i": i}}, model="fake:m", name="backlog") for i in range({n})]
during, started = [], time.perf_counter()
while True:
    during.append(bare())
    if all(r.tracking_status == "logged" for r in records[-5:]) and all(r.run_id for r in records):
        break
    if time.perf_counter() - started > 600:
        break
drain_s = time.perf_counter() - started
left = tracking.flush(300)
print(json.dumps({{"idle_ms": statistics.median(idle), "during_ms": statistics.median(during),
                  "calls_during": len(during), "drain_s": drain_s, "left": left}}))
"""


class Fake:
    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", "0"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.url = line.split()[1]
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)


def _project(url: str, writer: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="llmops-bench-w-"))
    (folder / "llmops.toml").write_text(f'writer = "{writer}"\n[endpoints.fake]\nbase_url = "{url}"\n')
    return folder


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "LLMOPS_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


LAST_CPU = [0.0]  # user + sys seconds of the last _py child (a loaded machine stretches wall time, not CPU)


def _py(code: str, cwd: Path, timeout: float = 900) -> tuple[float, str]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return wall, proc.stdout


def _stop_writers(folder: Path) -> None:
    sys.path.insert(0, str(REPO))
    from llmops_lab.tracking.writer_ident import stop_writers

    stop_writers(folder / ".llmops", timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def _runs_in_store(folder: Path) -> int:
    import sqlite3

    db = folder / ".llmops" / "mlflow.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE lifecycle_stage = 'active' AND status = 'FINISHED'"
                                ).fetchone()[0]
    except sqlite3.Error:
        return 0


def startup(url: str, runs: int) -> None:
    print(f"\n## Start-up: a whole 1-row tracked script vs a bare SDK script ({runs} runs each, alternated)")
    for writer in WRITERS:
        folder = _project(url, writer)
        try:
            _py(RUN_SCRIPT.format() + "llmops_lab.flush(300)\n", folder)  # warm-up: the store exists
            bare, tracked, reach, bare_cpu, tracked_cpu = [], [], [], [], []
            for _ in range(runs):
                bare.append(_py(BARE_SCRIPT.format(url=url), folder)[0])
                bare_cpu.append(LAST_CPU[0])
                before = _runs_in_store(folder)
                wall, _ = _py(RUN_SCRIPT.format(), folder)
                tracked.append(wall)
                tracked_cpu.append(LAST_CPU[0])
                exited = time.monotonic()
                # The thread writer wrote it before exit or left it in the spool (bounded exit flush): not waited.
                while writer == "process" and _runs_in_store(folder) <= before and time.monotonic() - exited < 120:
                    time.sleep(0.05)
                reach.append(time.monotonic() - exited)
            added = statistics.median(tracked) - statistics.median(bare)
            print(f"{writer:>8} writer: bare {statistics.median(bare):.2f} s, 1-row script "
                  f"{statistics.median(tracked):.2f} s, added {added:+.2f} s (target <= +{STARTUP_TARGET_S:.1f} s: "
                  f"{'ok' if added <= STARTUP_TARGET_S else 'MISSED'}); CPU bare {statistics.median(bare_cpu):.2f} s, "
                  f"script {statistics.median(tracked_cpu):.2f} s"
                  + (f"; in MLflow {statistics.median(reach):.2f} s after the script exited (median)"
                     if writer == "process" else ""))
        finally:
            _stop_writers(folder)


def memory(url: str, kernels: int) -> None:
    print(f"\n## Memory: kernel RSS after %load_ext + 20 tracked calls + flush vs one bare openai call "
          f"({kernels} kernels each)")
    for writer in WRITERS:
        folder = _project(url, writer)
        try:
            _py(RUN_SCRIPT.format() + "llmops_lab.flush(300)\n", folder)  # the store exists before
            bare, tracked = [], []
            for _ in range(kernels):
                bare.append(json.loads(_py(KERNEL.format(tracked=False, url=url), folder)[1].strip().splitlines()[-1])["rss_mb"])
                out = json.loads(_py(KERNEL.format(tracked=True, url=url), folder)[1].strip().splitlines()[-1])
                assert out["left"] == 0, out
                tracked.append(out["rss_mb"])
                mlflow_loaded = out["mlflow"]
            added = statistics.median(tracked) - statistics.median(bare)
            print(f"{writer:>8} writer: bare kernel {statistics.median(bare):.0f} MB, tracked kernel "
                  f"{statistics.median(tracked):.0f} MB, added {added:+.0f} MB (target <= +{MEMORY_TARGET_MB:.0f} MB: "
                  f"{'ok' if added <= MEMORY_TARGET_MB else 'MISSED'}); mlflow imported in the kernel: {mlflow_loaded}")
        finally:
            _stop_writers(folder)


def backlog(url: str, n: int) -> None:
    print(f"\n## Backlog: a bare SDK call's latency while {n} tracked records drain vs idle (same kernel)")
    for writer in WRITERS:
        folder = _project(url, writer)
        try:
            out = json.loads(_py(BACKLOG.format(url=url, n=n), folder)[1].strip().splitlines()[-1])
            added = out["during_ms"] - out["idle_ms"]
            print(f"{writer:>8} writer: idle {out['idle_ms']:.2f} ms, during the drain {out['during_ms']:.2f} ms "
                  f"({out['calls_during']} calls over {out['drain_s']:.1f} s), added {added:+.2f} ms (target within "
                  f"{BACKLOG_TARGET_MS:.0f} ms: {'ok' if abs(added) <= BACKLOG_TARGET_MS else 'MISSED'})")
        finally:
            _stop_writers(folder)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # figures appear as they are measured
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kernels", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--only", default="startup,memory,backlog")
    parser.add_argument("--writers", default="thread,process", help="which writers to measure")
    args = parser.parse_args()
    only = set(args.only.split(","))
    WRITERS[:] = args.writers.split(",")
    with Fake() as fake:
        print(f"fake server {fake.url}; python {sys.version.split()[0]}; {os.cpu_count()} cores")
        if "startup" in only:
            startup(fake.url, args.runs)
        if "memory" in only:
            memory(fake.url, args.kernels)
        if "backlog" in only:
            backlog(fake.url, args.backlog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
