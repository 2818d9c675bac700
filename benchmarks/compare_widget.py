"""Time to build and render the comparison grid for 1,000 rows x 6 variants (target <= 1 s).

Model calls are excluded: the results frames are generated (``llmops_lab.compare.synthetic``; in a real
comparison they come from ``batch`` and its cache). Measured, in one process with ipywidgets' comm
stubbed (no kernel): ``build`` = ``CompareGrid(cmp)`` including the header statistics (McNemar and paired
bootstrap per variant), the filter masks and the first page; ``page`` = moving to the next page;
``filter`` = toggling "only rows that differ"; ``sort`` = sorting by a variant's latency; ``rate`` =
rating a cell (header re-rendered). Baseline measured in the same run: ``summary()`` alone, and
rendering all 1,000 rows at once (what paging avoids). Medians of ``--repeat`` runs.

Usage: python benchmarks/compare_widget.py [--rows 1000] [--variants 6] [--repeat 5]
Always exits 0: a benchmark reports, it does not gate.
"""
from __future__ import annotations

import argparse
import statistics
import time

TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from ipywidgets.widgets.tests.utils import setup_test_comm

    setup_test_comm()
    from llmops_lab.evaluation.compare import synthetic
    from llmops_lab.widgets.compare_grid import CompareGrid

    timings: dict[str, list[float]] = {k: [] for k in ("summary", "build", "page", "filter", "sort", "rate",
                                                       "render all rows")}
    for seed in range(args.repeat):
        cmp = synthetic(args.rows, args.variants, seed=seed)
        t = time.perf_counter()
        cmp.summary()
        timings["summary"].append(time.perf_counter() - t)
        t = time.perf_counter()
        grid = CompareGrid(cmp)
        cmp._widget = grid
        timings["build"].append(time.perf_counter() - t)
        t = time.perf_counter()
        grid.page = 1
        timings["page"].append(time.perf_counter() - t)
        t = time.perf_counter()
        grid.only_diff = True
        timings["filter"].append(time.perf_counter() - t)
        t = time.perf_counter()
        grid.sort_by, grid.sort_desc = "1:latency_ms", True
        timings["sort"].append(time.perf_counter() - t)
        t = time.perf_counter()
        cmp.rate(3, 1, thumbs=True)
        timings["rate"].append(time.perf_counter() - t)
        grid.only_diff = False
        grid.page_size = args.rows
        t = time.perf_counter()
        grid.render_rows()
        timings["render all rows"].append(time.perf_counter() - t)
    print(f"compare grid, {args.rows} rows x {args.variants} variants, median of {args.repeat}:")
    for name, values in timings.items():
        print(f"  {name:16s} {statistics.median(values) * 1000:8.1f} ms")
    build = statistics.median(timings["build"])
    print(f"build + first page: {build:.3f} s (target <= {TARGET_S:.1f} s: {'ok' if build <= TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
