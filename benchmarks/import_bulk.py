"""Bulk import of the published tables: time, rows, and a rerun that writes nothing.

The real tables are bigger than the excerpts in ../shared/data/published-results-samples: imagenet-testbed's
``robustness_top1s.csv`` has 338 models x 213 settings (about 45,800 non-empty cells) and each timm results
table about 1,550 rows. This script makes synthetic tables of that size with the excerpts' columns
(seeded; the same fraction of empty cells as the excerpt), then times

1. ``generalization import testbed`` + ``generalization import timm`` (all 8 result tables + metadata) into an
   empty store, each as a fresh ``python -m generalization`` process (what a user runs; includes start-up);
2. the same again (a rerun: every row unchanged, nothing written);

reporting wall-clock and CPU (user + system) seconds: on a shared machine the CPU time is the stable figure;
about 2 s of each process is the package's start-up (numpy, pandas, scipy, statsmodels),

and checks that every non-empty cell became one row of the accuracy table.

    .venv/bin/python benchmarks/import_bulk.py [--models 338] [--timm-rows 1550] [--excerpt] [--repeats 3]

``--excerpt`` times the excerpts in ../shared instead of synthetic tables.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHARED = Path(
    os.environ.get("GENERALIZATION_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SAMPLES = SHARED / "published-results-samples"
TIMM = ["imagenet", "imagenetv2-matched-frequency", "imagenet-real", "sketch", "imagenet-a", "imagenet-a-clean",
        "imagenet-r", "imagenet-r-clean"]  # fmt: skip


def synthetic_tables(folder: Path, n_models: int, timm_rows: int, seed: int = 0) -> tuple[Path, list[Path]]:
    """A full-size testbed table and 8 timm tables with the excerpts' columns and emptiness."""
    rng = np.random.default_rng(seed)
    wide = pd.read_csv(SAMPLES / "robustness_top1s.csv")
    cols = [c for c in wide.columns if c != "model"]
    filled = wide[cols].notna().to_numpy().mean(axis=0)  # per-setting fraction of models evaluated
    values = rng.uniform(1, 95, size=(n_models, len(cols)))
    values[rng.uniform(size=values.shape) > filled] = np.nan
    tb = pd.DataFrame(values, columns=cols)
    tb.insert(0, "model", [f"model_{i:03d}" for i in range(n_models)])
    testbed = folder / "robustness_top1s.csv"
    tb.to_csv(testbed, index=False)
    timm = []
    for kind in TIMM:
        top1 = rng.uniform(1, 90, timm_rows)
        df = pd.DataFrame({"model": [f"arch{i}.tag_in1k" for i in range(timm_rows)], "img_size": 224,
                           "top1": top1.round(3), "top1_err": (100 - top1).round(3),
                           "top5": np.minimum(top1 + rng.uniform(0, 9, timm_rows), 100).round(3),
                           "param_count": 25.56, "crop_pct": 0.875, "interpolation": "bicubic"})  # fmt: skip
        df["top5_err"] = (100 - df["top5"]).round(3)
        path = folder / f"results-{kind}.csv"
        df.to_csv(path, index=False)
        timm.append(path)
    shutil.copy(SAMPLES / "model_metadata-in1k.csv", folder / "model_metadata-in1k.csv")
    return testbed, [*timm, folder / "model_metadata-in1k.csv"]


def cells(testbed: Path, timm: list[Path]) -> int:
    """Non-empty accuracy cells, counted independently of the importer."""
    wide = pd.read_csv(testbed)
    k = int(wide.drop(columns="model").notna().to_numpy().sum())
    return k + sum(int(pd.read_csv(p)["top1"].notna().sum()) for p in timm if p.name.startswith("results-"))


def run(store: Path, testbed: Path, timm: list[Path]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of the two import commands."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    for cmd in (["testbed", str(testbed)], ["timm", *map(str, timm)]):
        subprocess.run([sys.executable, "-m", "generalization", "import", *cmd, "--store", str(store)],
                       check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=338)
    ap.add_argument("--timm-rows", type=int, default=1550)
    ap.add_argument("--excerpt", action="store_true", help="time the excerpts in ../shared instead")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from generalization.store.records import PredictionStore

    with tempfile.TemporaryDirectory(prefix="import-bulk-") as tmp:
        tmp = Path(tmp)
        if args.excerpt:
            testbed = SAMPLES / "robustness_top1s.csv"
            timm = sorted(SAMPLES.glob("results-*.csv")) + [SAMPLES / "model_metadata-in1k.csv"]
        else:
            testbed, timm = synthetic_tables(tmp, args.models, args.timm_rows)
        expected = cells(testbed, timm)
        firsts, reruns = [], []
        for i in range(args.repeats):
            store = tmp / f"store{i}"
            firsts.append(run(store, testbed, timm))
            reruns.append(run(store, testbed, timm))
        table = PredictionStore(tmp / "store0").accuracy_table()
        files = sum(1 for _ in (tmp / "store0").rglob("*") if _.is_file())
        print(f"tables: {'excerpt' if args.excerpt else f'synthetic, {args.models} testbed models, {args.timm_rows} rows per timm table'}")
        print(f"non-empty cells: {expected}; accuracy-table rows: {len(table)}; files in the store: {files}")
        for what, runs in (("import (2 CLI processes)", firsts), ("rerun (no-op)", reruns)):
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            print(f"{what:25s} wall median {np.median(walls):.2f} s, CPU median {np.median(cpus):.2f} s "
                  f"(wall: {', '.join(f'{t:.2f}' for t in walls)}; load average {os.getloadavg()[0]:.1f})")
        if len(table) != expected:
            raise SystemExit(f"FAIL: {expected} cells but {len(table)} rows")


if __name__ == "__main__":
    main()
