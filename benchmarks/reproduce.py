"""Time ``generalization reproduce`` without arguments (rebuild ``results/`` from ``results/accuracies.csv``),
drawing in one process against drawing in :data:`~generalization.analysis.report.DRAWING_PROCESSES` forked ones,
side by side (alternating runs, so both see the same load), and print the ratio.

    python benchmarks/reproduce.py [--results results] [--repeats 3]

Each run writes into a fresh copy of the results folder in a temporary directory; the outputs of the two variants
are compared byte for byte (they must be identical).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from generalization.analysis import report
from generalization.workflows import reproduce


def _run(results: Path, work: Path, processes: int) -> tuple[float, Path]:
    out = work / f"p{processes}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(results, out)
    report.DRAWING_PROCESSES = processes
    start = time.perf_counter()
    reproduce(out=out)
    return time.perf_counter() - start, out


def _same(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    stack = [cmp]
    while stack:
        c = stack.pop()
        if c.left_only or c.right_only or filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)[1]:
            return False
        stack += c.subdirs.values()
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results"), help="results folder to rebuild (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant (default: %(default)s)")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}")
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for _ in range(args.repeats):
            for p in (1, 2):
                wall, outs[p] = _run(args.results, Path(tmp), p)
                times[p].append(wall)
        identical = _same(outs[1], outs[2])
    for p, ts in times.items():
        print(f"{p} drawing process(es): median {statistics.median(ts):.2f} s wall  ({', '.join(f'{t:.2f}' for t in ts)})")
    print(f"ratio one / two: {statistics.median(times[1]) / statistics.median(times[2]):.2f}x; outputs identical: {identical}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
