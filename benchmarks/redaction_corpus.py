"""Recall and precision of the built-in redactor (default policy: secrets + pii) on the labelled corpus in
tests/redaction_corpus/, next to detect-secrets 1.5 (default plugins) measured in the same run, per
category and per kind; then throughput (texts/s) of both on the same texts.

    .venv/bin/python benchmarks/redaction_corpus.py [--kinds] [--misses] [--repeats 3]

detect-secrets finds secrets only: its PII rows say n/a. Always exits 0.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "redaction_corpus"))

from scoring import Score, detect_secrets, load, ours, score

from llmops_lab.trust.redaction import Redactor, parse_policy


def pct(x: float) -> str:
    return "  n/a " if math.isnan(x) else f"{100 * x:5.1f}%"


def category_table(mine: Score, theirs: Score | None) -> None:
    print(f"\n{'category':<8} {'n':>4} | {'ours R':>7} {'masked':>7} {'ours P':>7} | {'d-s R':>7} {'d-s P':>7} | R ratio")
    for category in ("secret", "pii", "all"):
        m = mine.categories[category]
        t = theirs.categories.get(category) if theirs else None
        if category == "pii":
            t = None  # detect-secrets has no PII detectors (its IP plugin aside): not comparable
        ratio = f"{m.recall / t.recall:5.2f}x" if t and t.recall else "  n/a"
        print(f"{category:<8} {m.positives:>4} | {pct(m.recall):>7} {pct(m.masked_recall):>7} {pct(m.precision):>7} | "
              f"{pct(t.recall) if t else '  n/a':>7} {pct(t.precision) if t else '  n/a':>7} | {ratio}")
    print(f"negatives with a finding: ours {sum(map(len, mine.negative_hits.values()))}/{mine.negatives}"
          + (f", detect-secrets {sum(map(len, theirs.negative_hits.values()))}/{theirs.negatives}" if theirs else ""))


def kind_table(mine: Score, theirs: Score | None) -> None:
    print(f"\n{'kind':<22} {'n':>3} | {'ours R':>7} {'masked':>7} | {'d-s R':>7}")
    for kind, m in sorted(mine.kinds.items()):
        t = theirs.kinds.get(kind) if theirs else None
        print(f"{kind:<22} {m.positives:>3} | {pct(m.recall):>7} {pct(m.masked_recall):>7} | "
              f"{pct(t.recall) if t else '  n/a':>7}")
    print(f"\n{'negative kind':<22} | ours FP | d-s FP")
    kinds = sorted(set(mine.negative_hits) | set(theirs.negative_hits if theirs else ()))
    for kind in kinds:
        print(f"{kind:<22} | {len(mine.negative_hits.get(kind, [])):>7} | "
              f"{len(theirs.negative_hits.get(kind, [])) if theirs else 'n/a':>6}")


def misses(name: str, result: Score) -> None:
    print(f"\n{name}: missed positives and flagged negatives")
    for kind, tally in sorted(result.kinds.items()):
        for text in tally.missed:
            print(f"  miss {kind}: {text[:110]!r}")
    for kind, texts in sorted(result.negative_hits.items()):
        for text in texts:
            print(f"  fp   {kind}: {text[:110]!r}")


def throughput(finder, texts: list[str], repeats: int) -> float:
    """Texts per second of CPU time (process time: steadier than wall time on a shared machine), best run."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for text in texts:
            list(finder(text))
        best = min(best, time.process_time() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", action="store_true", help="per-kind recall and per-negative-kind false positives")
    parser.add_argument("--misses", action="store_true", help="list every miss and false positive")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    positives, negatives = load("positives.jsonl"), load("negatives.jsonl")
    print(f"corpus: {len(positives)} positives over {len({r['kind'] for r in positives})} kinds, "
          f"{len(negatives)} negatives over {len({r['kind'] for r in negatives})} kinds")
    redactor = Redactor(parse_policy({}))
    uncached = ours(type("Uncached", (), {"redact": staticmethod(redactor._redact)})())
    mine = score(uncached, positives, negatives)
    try:
        from detect_secrets.__version__ import VERSION as ds
    except ImportError:
        ds = None
        print("detect-secrets is not installed (pip install detect-secrets==1.5.0): our figures only")
    theirs, rate_theirs = None, None
    texts = [r["text"] for r in positives + negatives]
    if ds is not None:
        print(f"detect-secrets {ds}, default plugins and filters")
        with detect_secrets() as finder:
            theirs = score(finder, positives, negatives)
            rate_theirs = throughput(finder, texts, args.repeats)
    category_table(mine, theirs)
    if args.kinds:
        kind_table(mine, theirs)
    if args.misses:
        misses("ours", mine)
        if theirs:
            misses("detect-secrets", theirs)
    rate_ours = throughput(uncached, texts, args.repeats)
    print(f"\nthroughput on the {len(texts)} corpus texts (uncached, CPU time, best of {args.repeats}): "
          f"ours {rate_ours:,.0f} texts/s" + (f", detect-secrets {rate_theirs:,.0f} texts/s "
                                               f"({rate_ours / rate_theirs:.0f}x)" if rate_theirs else ""))


if __name__ == "__main__":
    main()
