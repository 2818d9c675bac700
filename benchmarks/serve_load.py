"""``llmops-lab serve`` under load: latency it adds over a direct upstream call, throughput, and records.

    .venv/bin/python benchmarks/serve_load.py [--requests 400] [--concurrency 32] [--soak-s 60] [--soak-c 16]

Upstream is ``tests/fake_openai.py`` at 0 ms in its own process; the endpoint is a real ``llmops-lab serve``
process in a temporary project (sqlite store); the client is the official openai SDK in threads. Each request
is timed twice in alternation — once against the upstream directly, once through ``prompt:bench@production`` —
and the figures are medians and p99 of those pairs (added = through − direct). Then ``flush`` and a count of
the ``llmops.kind=serve`` runs: every answered request must be one. Always exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LLMOPS_", "OPENAI_"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"process exited: {proc.args}")
            time.sleep(0.3)
    raise SystemExit(f"no answer from {url}")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--soak-s", type=float, default=60)
    ap.add_argument("--soak-c", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    import openai

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        upstream = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", "0"],
                                    stdout=subprocess.PIPE, text=True, env=_env())
        base = upstream.stdout.readline().split()[-1]
        (project / "llmops.toml").write_text(f'model = "fake:upstream"\n[endpoints.fake]\nbase_url = "{base}"\n')
        setup = ("from llmops_lab.tracking import registry\nfrom llmops_lab.gateway.keys import KeyStore\n"
                 "import llmops_lab\nv = registry.register_version('bench', 'Answer briefly: {{ q }}', "
                 "model='fake:upstream', params={'temperature': 0})\nregistry.set_alias('bench', 'production', "
                 "int(v.version))\nprint(KeyStore(llmops_lab.get_settings().home).create('bench'))\n")
        key = subprocess.run([sys.executable, "-c", setup], cwd=project, env=_env(), capture_output=True,
                             text=True, check=True).stdout.split()[-1]
        port = _free_port()
        serve = subprocess.Popen([sys.executable, "-m", "llmops_lab.cli", "serve", "--port", str(port),
                                  "--workers", str(a.workers)], cwd=project, env=_env(),
                                 stdout=open(project / "serve.log", "w"), stderr=subprocess.STDOUT)
        try:
            _wait(f"http://127.0.0.1:{port}/healthz", serve)
            direct = openai.OpenAI(base_url=base, api_key="x", max_retries=0)
            through = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            answered = [0]

            def pair(i: int) -> tuple[float, float]:
                t0 = time.perf_counter()
                direct.chat.completions.create(model="upstream",
                                               messages=[{"role": "user", "content": f"Answer briefly: q{i}"}])
                t1 = time.perf_counter()
                r = through.chat.completions.create(model="prompt:bench@production", messages=[],
                                                    extra_body={"variables": {"q": f"q{i}"}})
                t2 = time.perf_counter()
                assert r.choices[0].message.content
                answered[0] += 1
                return (t1 - t0) * 1000, (t2 - t1) * 1000

            for i in range(20):  # warm-up: connections, the prompt cache, the writer's first import
                pair(-i)
            answered[0] = 0
            for label, n, c in (("sequential", 100, 1), ("burst", a.requests, a.concurrency)):
                started = time.perf_counter()
                with ThreadPoolExecutor(c) as pool:
                    pairs = list(pool.map(pair, range(n)))
                wall = time.perf_counter() - started
                d = [p[0] for p in pairs]
                t = [p[1] for p in pairs]
                added = [y - x for x, y in pairs]
                print(f"{label:10s} n={n} c={c}: direct p50 {statistics.median(d):.2f} ms p99 {_pct(d, .99):.2f}; "
                      f"through serve p50 {statistics.median(t):.2f} ms p99 {_pct(t, .99):.2f}; added p50 "
                      f"{statistics.median(added):.2f} ms p99 {_pct(added, .99):.2f}; {n / wall:.0f} pairs/s")
            if a.soak_s > 0:
                stop = time.monotonic() + a.soak_s
                errors = [0]

                def soak(_: int) -> int:
                    done = 0
                    while time.monotonic() < stop:
                        try:
                            through.chat.completions.create(model="prompt:bench@production", messages=[],
                                                            extra_body={"variables": {"q": "soak"}})
                            answered[0] += 1
                            done += 1
                        except openai.OpenAIError:
                            errors[0] += 1
                    return done

                with ThreadPoolExecutor(a.soak_c) as pool:
                    total = sum(pool.map(soak, range(a.soak_c)))
                print(f"soak {a.soak_s:.0f} s c={a.soak_c}: {total} answered ({total / a.soak_s:.0f}/s), "
                      f"{errors[0]} errors")
        finally:
            serve.send_signal(signal.SIGTERM)
            print(f"serve exit code after SIGTERM: {serve.wait(120)}")
            upstream.terminate()
        flushed = subprocess.run([sys.executable, "-m", "llmops_lab.cli", "flush", "--timeout", "600"], cwd=project,
                                 env=_env(), capture_output=True, text=True, timeout=900)
        print(f"flush: {flushed.stdout.strip()} {flushed.stderr.strip()[-300:]}")
        count = ("import llmops_lab\nfrom mlflow import MlflowClient\nc = MlflowClient(llmops_lab.get_settings()"
                 ".resolved_tracking_uri())\nexps = [e.experiment_id for e in c.search_experiments()]\n"
                 "runs = c.search_runs(exps, \"tags.`llmops.kind` = 'serve'\", max_results=50000)\n"
                 "print(len(runs), int(sum(r.data.metrics.get('rows', 0) for r in runs)))\n")
        runs = subprocess.run([sys.executable, "-c", count], cwd=project, env=_env(), capture_output=True,
                              text=True).stdout.split()
        expected = answered[0] + 20
        print(f"records: {runs[-1] if runs else '?'} rows in {runs[-2] if runs else '?'} serve runs in MLflow for "
              f"{expected} answered requests (warm-up included)")
        print(json.dumps({"load_average_after": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
