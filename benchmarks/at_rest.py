"""What LLMOPS_DATA_KEY costs on the hot paths of a batch: a spool append, and the cache's put_many / get_many
of 2,000 answers (300 characters each), without a key and with one; plus one seal/open of a typical record.

    python benchmarks/at_rest.py [--rows 2000] [--repeats 7]

Medians of ``--repeats``; per record in microseconds. Without a key nothing is encrypted and cryptography is
not imported; the script checks that too. Exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rows: int, repeats: int) -> dict[str, float]:
    from llmops_lab.core.cache import CachedResponse, ResponseCache
    from llmops_lab.tracking.spool import Spool

    record = {"id": "r" * 32, "kind": "single", "prompt": {"template": "Summarize: {{ text }}" * 5},
              "messages": [{"role": "user", "content": "x" * 600}], "output": "y" * 300, "usage": [120, 80]}
    answers = [(f"{i:064x}", CachedResponse("a" * 300, 120, 80, "stop", "m", 12.0)) for i in range(rows)]
    keys = [k for k, _ in answers]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool")
        out["spool append (us/record)"] = _median(lambda: [spool.append(record) for _ in range(200)], repeats) / 200 * 1e6
        spool.close()
        cache = ResponseCache(Path(tmp) / "cache.db")
        out["cache put_many (us/row)"] = _median(lambda: cache.put_many(answers), repeats) / rows * 1e6
        assert len(cache.get_many(keys)) == rows
        out["cache get_many (us/row)"] = _median(lambda: cache.get_many(keys), repeats) / rows * 1e6
        cache.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.environ.pop("LLMOPS_DATA_KEY", None)
    plain = measure(args.rows, args.repeats)
    assert "cryptography" not in sys.modules, "cryptography imported without a key"
    from llmops_lab.trust import at_rest

    os.environ["LLMOPS_DATA_KEY"] = at_rest.new_key()
    sealed = measure(args.rows, args.repeats)
    line = json.dumps({"messages": [{"role": "user", "content": "x" * 600}], "output": "y" * 300})
    token = at_rest.seal(line, b"c")
    seal_us = _median(lambda: [at_rest.seal(line, b"c") for _ in range(1000)], args.repeats) / 1000 * 1e6
    open_us = _median(lambda: [at_rest.open_text(token, b"c", "x") for _ in range(1000)], args.repeats) / 1000 * 1e6
    print(f"{'':28} {'no key':>9} {'with key':>9} {'added':>9}")
    for name in plain:
        print(f"{name:28} {plain[name]:9.2f} {sealed[name]:9.2f} {sealed[name] - plain[name]:+9.2f}")
    print(f"seal / open of a {len(line)}-character record: {seal_us:.1f} / {open_us:.1f} us "
          f"(+{len(token) - len(line)} characters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
