"""What the embedded model's worker process costs: per call, at start-up, and in tokens/s.

Baseline, measured in the same run: llama-cpp-python loaded in this process (what the provider did before
the worker), with the same model file, parameters and prompts. The two are alternated call by call.

    .venv/bin/python benchmarks/local_worker.py [--calls 30]

Prints medians: added latency per call (target <= 5 ms), load times, and tokens/s of a longer answer.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from llmops_lab.providers import local

SHORT = [{"role": "user", "content": "Say OK."}]
LONG = [{"role": "user", "content": "Write four sentences about the sea."}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    path = str(local.model_path("smollm2-135m"))

    start = time.perf_counter()
    import llama_cpp

    inproc = llama_cpp.Llama(model_path=path, n_threads=os.cpu_count() or 1, verbose=False,
                             n_ctx=local.CONTEXT_TOKENS)
    inproc_load_s = time.perf_counter() - start

    provider = local.provider()
    start = time.perf_counter()
    provider.complete("smollm2-135m", SHORT, {"max_tokens": 1, "temperature": 0})
    worker_start_s = time.perf_counter() - start

    def in_process(messages, max_tokens):
        t = time.perf_counter()
        out = inproc.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0)
        return (time.perf_counter() - t) * 1000, out["usage"]["completion_tokens"]

    def worker(messages, max_tokens):
        t = time.perf_counter()
        c = provider.complete("smollm2-135m", messages, {"max_tokens": max_tokens, "temperature": 0})
        return (time.perf_counter() - t) * 1000, c.usage.completion_tokens

    for fn in (in_process, worker):  # warm both (prompt caches, page cache)
        fn(SHORT, 4)
    short = {"in-process": [], "worker": []}
    for _ in range(args.calls):
        short["in-process"].append(in_process(SHORT, 4)[0])
        short["worker"].append(worker(SHORT, 4)[0])
    rates = {"in-process": [], "worker": []}
    for _ in range(5):
        for label, fn in (("in-process", in_process), ("worker", worker)):
            ms, tokens = fn(LONG, 96)
            rates[label].append(tokens / (ms / 1000))

    med = {k: statistics.median(v) for k, v in short.items()}
    print(f"load: in-process {inproc_load_s:.2f} s; worker start (spawn + import + load + 1 token) "
          f"{worker_start_s:.2f} s")
    print(f"4-token call, median of {args.calls}: in-process {med['in-process']:.1f} ms, worker "
          f"{med['worker']:.1f} ms, added {med['worker'] - med['in-process']:+.1f} ms "
          f"(ratio {med['worker'] / med['in-process']:.3f})")
    print(f"tokens/s, 96-token answer, median of 5: in-process {statistics.median(rates['in-process']):.0f}, "
          f"worker {statistics.median(rates['worker']):.0f}")
    inproc.close()
    provider.shutdown()


if __name__ == "__main__":
    main()
