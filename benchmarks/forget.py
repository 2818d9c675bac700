"""``llmops_lab.forget`` on a store of N real runs: how long a dry run, a ``--contains`` and a ``--user`` take.

Every run is a real ``llmops_lab.run`` call against ``tests/fake_openai.py`` (a run, its artifacts and a trace,
as a notebook cell logs them); one in ten mentions the erased word, and half the runs belong to user "ada".
``--contains`` reads every run's params, tags and text artifacts and every trace, so it grows with the store;
``--user`` and ``--run`` only read the matched runs' artifacts.

    .venv/bin/python benchmarks/forget.py [--runs 200]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs")
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        Path("llmops.toml").write_text("")
        from fake_openai import FakeOpenAI

        import llmops_lab
        from llmops_lab import tracking
        from llmops_lab.tracking import context

        with FakeOpenAI() as server:
            llmops_lab.get_settings().endpoints["fake"] = {"base_url": server.base_url}
            llmops_lab.configure(model="fake:bench")
            start = time.perf_counter()
            for i in range(args.runs):
                user = "ada" if i % 2 else "bob"
                context.user = lambda user=user: user
                thing = "Quokkaberry" if i % 10 == 0 else f"topic {i}"
                llmops_lab.run("Tell me about {{ thing }}", {"thing": thing}, name="about")
            tracking.flush(600)
            print(f"seeding: {time.perf_counter() - start:.1f} s")
            context.user = lambda: "operator"
            for label, kwargs in (("dry run --contains", {"contains": "quokkaberry", "dry_run": True}),
                                  ("--contains", {"contains": "quokkaberry"}),
                                  ("dry run --user", {"user": "ada", "dry_run": True}),
                                  ("--user", {"user": "ada"})):
                start = time.perf_counter()
                report = llmops_lab.forget(**kwargs)
                counts = report.counts()
                print(f"{label:20s} {time.perf_counter() - start:6.2f} s   runs {counts['runs']}, "
                      f"traces {counts['traces']}, artifacts {counts['artifacts']}")
            tracking.shutdown(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
