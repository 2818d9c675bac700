"""Rows/s of a 50-row batch on the embedded model at concurrency 1, 2 and 4, by worker layout.

Layouts, alternated within each repeat (medians of ``--repeats``), set by the batch's worker cap
(``LLMOPS_LOCAL_WORKERS``) and optionally ``LLMOPS_LOCAL_THREADS``: cap 1 is one worker on every core (the
design before); cap 2 (the default on 2 cores: one per core) and 4 give min(concurrency, cap) workers on
cores // cap threads (at least 1). The baseline, measured in the same run, is the design before at
concurrency 1. Same rows (demo-like: one-word sentiment, 50 distinct reviews), temperature 0,
``max_tokens`` 5, cache and tracking off. The primary worker is warm; extra workers start inside the timed
batch, as a user's would. Prints the load average (the machine may be shared), the answers' agreement with
the baseline, and each worker's RSS.

    .venv/bin/python benchmarks/local_batch.py [--rows 50] [--repeats 3] [--max-tokens 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import pandas as pd

import llmops_lab
from llmops_lab.providers import local

PROMPT = "Classify the sentiment of the review as positive or negative. Answer with one word.\n\nReview: {{ text }}"
REVIEWS = ["I loved this film, the acting was wonderful.", "Terrible service, I will never come back.",
           "Great value and fast delivery, very happy!", "The battery died after two days. Awful.",
           "Absolutely delightful evening, thank you!", "Cold food and a rude waiter.",
           "Best purchase I made this year.", "It broke the first time I used it.",
           "Friendly staff and a lovely view.", "The parcel arrived late and damaged."]
# (concurrency, worker cap, LLMOPS_LOCAL_THREADS or None). At concurrency 1 a batch uses one worker whatever
# the cap; with cap 2 that worker runs one thread.
VARIANTS = [(1, 1, None), (1, 2, None), (2, 1, None), (2, 2, None), (4, 1, None), (4, 2, None), (4, 4, None)]
TICK = os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """A worker's RSS and its anonymous part (its own; the mmapped weights are shared by every worker)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value
    except OSError:
        return 0.0, 0.0
    return (int(fields.get("VmRSS", "0 kB").split()[0]) / 1024,
            int(fields.get("RssAnon", "0 kB").split()[0]) / 1024)


def cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def run(rows: pd.DataFrame, concurrency: int, cap: int, threads: int | None,
        max_tokens: int) -> tuple[float, list, dict[int, tuple[float, float]], float]:
    os.environ["LLMOPS_LOCAL_WORKERS"] = str(cap)
    os.environ["LLMOPS_LOCAL_THREADS"] = str(threads or "")
    provider = local.provider()
    peak: dict[int, tuple[float, float]] = {}
    first = {pid: cpu_s(pid) or 0.0 for pid in provider.worker_pids}
    last: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:  # each worker's peak memory and last CPU time while the batch runs
        while not done.wait(0.1):
            for pid in provider.worker_pids:
                rss, anon = memory_mb(pid)
                old = peak.get(pid, (0.0, 0.0))
                peak[pid] = (max(old[0], rss), max(old[1], anon))
                last[pid] = cpu_s(pid) or last.get(pid, 0.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    frame = llmops_lab.batch(PROMPT, rows, concurrency=concurrency, max_tokens=max_tokens, temperature=0,
                             cache=False, progress=False)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    for pid in provider.worker_pids:
        last[pid] = cpu_s(pid) or last.get(pid, 0.0)
    assert int(frame["error"].notna().sum()) == 0, frame["error"].dropna().tolist()[:3]
    worker_cpu = sum(cpu - first.get(pid, 0.0) for pid, cpu in last.items())
    return len(rows) / seconds, list(frame["output"]), peak, worker_cpu / len(rows)


def label(variant: tuple) -> str:
    concurrency, cap, threads = variant
    workers, threads = min(concurrency, cap), threads or max(1, local.cpu_cores() // cap)
    default = " (default)" if cap == local.cpu_cores() and variant[2] is None else ""
    return f"c={concurrency}: {workers} worker(s) x {threads} thread(s){default}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=5)
    args = parser.parse_args()
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    rows = pd.DataFrame({"text": [f"{REVIEWS[i % len(REVIEWS)]} (order {i})" for i in range(args.rows)]})
    provider = local.provider()
    provider.complete("smollm2-135m", [{"role": "user", "content": "Say OK."}], {"max_tokens": 1})  # warm
    rates: dict[tuple, list[float]] = {v: [] for v in VARIANTS}
    outputs: dict[tuple, list] = {}
    memory: dict[tuple, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    cpu_per_row: dict[tuple, list[float]] = {v: [] for v in VARIANTS}
    loads = [os.getloadavg()[0]]
    for repeat in range(args.repeats):
        for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
            rate, out, peak, cpu = run(rows, *variant, args.max_tokens)
            rates[variant].append(rate)
            outputs[variant] = out
            memory[variant].extend(peak.values())
            cpu_per_row[variant].append(cpu)
            loads.append(os.getloadavg()[0])
            print(f"  repeat {repeat + 1} {label(variant)}: {rate:.2f} rows/s, {len(peak)} worker(s), "
                  f"{cpu * 1000:.0f} ms worker CPU/row, load {loads[-1]:.2f}", flush=True)
    base = statistics.median(rates[VARIANTS[0]])
    print(f"{args.rows} rows, max_tokens {args.max_tokens}, {local.cpu_cores()} cores, medians of {args.repeats}; "
          f"load average (1 min) {min(loads):.2f}-{max(loads):.2f}, median {statistics.median(loads):.2f}")
    for variant in VARIANTS:
        med = statistics.median(rates[variant])
        same = outputs[variant] == outputs[VARIANTS[0]]
        rss = max((m[0] for m in memory[variant]), default=0)
        anon = max((m[1] for m in memory[variant]), default=0)
        print(f"{label(variant)}: {med:.2f} rows/s (min {min(rates[variant]):.2f}, max {max(rates[variant]):.2f}), "
              f"ratio vs c=1 {med / base:.2f}; worker CPU {statistics.median(cpu_per_row[variant]) * 1000:.0f} "
              f"ms/row; answers as c=1: {same}; per worker RSS {rss:.0f} MB, anonymous {anon:.0f} MB")
    provider.shutdown()


if __name__ == "__main__":
    main()
