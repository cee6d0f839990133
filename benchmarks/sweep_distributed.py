"""Benchmark: the decode-once sweep in one process vs data-parallel over 2 processes (torchrun, gloo on CPU).

The same models on the same images, one run after the other (``--repeats`` rounds, interleaved):

1 process      ``python -m generalization evaluate`` with torch's default threads (one per core)
1 process, 1t  the same with one thread (the per-rank share of a 2-core machine; shows the scaling per core)
N processes    ``torchrun --nproc-per-node N -m generalization evaluate`` (each rank ``cores // N`` threads)

Throughput is images x models per second of evaluation: images x models / the sum of the per-pair wall times
the store records (a distributed pair's wall time is rank 0's, from the pair's start until all ranks' top-5 are
gathered, so it includes the slowest rank and the gather). End-to-end times (including Python start-up,
``import torch`` and process-group set-up) are printed too. Every configuration must write the same predictions;
the benchmark checks it.

Case: cifar10/resnet20/32/44/56 (published weights) on the 10,000-image CIFAR-10 test set in the official format,
built from ../shared/data (1,000 lossless + 9,000 JPEG copies; ``--limit`` takes the first N rows).

Usage: ``python benchmarks/sweep_distributed.py [--nproc 2] [--repeats 3] [--limit N] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the test-fixture builders

from builders import assemble_cifar10_test  # noqa: E402

from generalization.store.records import PredictionStore  # noqa: E402

RESNETS = ["cifar10/resnet20", "cifar10/resnet32", "cifar10/resnet44", "cifar10/resnet56"]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _entry() -> list[str]:
    return ["-m", "generalization", "evaluate"]  # the one CLI, in every rank


def _run(config: dict, models: list[str], data_root: Path, out: Path, torch_home: Path, device: str) -> dict:
    env = {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1"}
    env.pop("GENERALIZATION_THREADS_PER_RANK", None)
    if config["nproc"] == 1:
        cmd = [sys.executable, "-m", "generalization", "evaluate"]
        env["OMP_NUM_THREADS"] = str(config["threads"])
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={config['nproc']}",
        ]
        cmd += _entry()
        env.pop("OMP_NUM_THREADS", None)
    cmd += [a for m in models for a in ("--model", m)]
    cmd += ["--dataset", "cifar10-test", "--data-root", str(data_root), "--out", str(out), "--device", device]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{config['name']} failed:\n{proc.stderr[-4000:]}")
    store = PredictionStore(out)
    recs = [store.get("evaluate", m, "cifar10-test") for m in models]
    wall = sum(r.meta["wall_s"] for r in recs)
    n = recs[0].n
    return {
        "wall_s": wall,
        "end_to_end_s": elapsed,
        "throughput": n * len(models) / wall,
        "end_to_end_throughput": n * len(models) / elapsed,
        "predictions": {m: store.predictions("evaluate", m, "cifar10-test") for m in models},
        "n": n,
    }


def run_benchmark(
    *,
    nproc: int = 2,
    repeats: int = 1,
    limit: int = 10_000,
    models: list[str] | None = None,
    device: str = "cpu",
    shared_data: Path = ROOT.parent / "shared" / "data",
    log=print,
) -> dict:
    """Time 1 process vs ``nproc`` processes on the same models and images; returns the medians and ratios."""
    models = models or RESNETS
    cores = _cores()
    configs = [
        {"name": f"1 process ({cores} threads)", "nproc": 1, "threads": cores},
        {"name": "1 process (1 thread)", "nproc": 1, "threads": 1},
        {
            "name": f"{nproc} processes ({max(1, cores // nproc)} thread(s) each)",
            "nproc": nproc,
            "threads": None,
        },
    ]
    if cores == 1:
        configs.pop(1)
    with tempfile.TemporaryDirectory(prefix="sweep-distributed-") as tmp:
        tmp = Path(tmp)
        torch_home = tmp / "torch_home"
        (torch_home / "hub" / "checkpoints").mkdir(parents=True)
        for f in sorted((shared_data / "cifar10-resnets").glob("*.th")):
            shutil.copy(f, torch_home / "hub" / "checkpoints" / f.name)
        data_root = tmp / "cifar"
        assemble_cifar10_test(shared_data, data_root, limit)
        results: dict[str, list[dict]] = {c["name"]: [] for c in configs}
        for r in range(repeats):
            for c in configs:
                out = tmp / f"store-{r}-{c['nproc']}-{c['threads']}"
                res = _run(c, models, data_root, out, torch_home, device)
                results[c["name"]].append(res)
                log(
                    f"round {r + 1}: {c['name']:<32} {res['throughput']:8.1f} images x models / s "
                    f"(end to end {res['end_to_end_s']:.1f} s)"
                )
                shutil.rmtree(out)
    ref = results[configs[0]["name"]][0]["predictions"]
    same = all(
        np.array_equal(res["predictions"][m], ref[m])
        for runs in results.values()
        for res in runs
        for m in models
    )
    summary = {
        name: {
            "throughput": statistics.median(x["throughput"] for x in runs),
            "end_to_end_throughput": statistics.median(x["end_to_end_throughput"] for x in runs),
            "runs": [round(x["throughput"], 1) for x in runs],
        }
        for name, runs in results.items()
    }
    one, dist = summary[configs[0]["name"]]["throughput"], summary[configs[-1]["name"]]["throughput"]
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores, {platform.system()}",
        "device": device,
        "images": ref[models[0]].shape[0],
        "models": models,
        "repeats": repeats,
        "configs": summary,
        "ratio": dist / one,
        "ratio_vs_one_thread": dist / summary["1 process (1 thread)"]["throughput"] if cores > 1 else None,
        "same_predictions": bool(same),
    }
    log("")
    log(
        f"{out['images']:,} images x {len(models)} models on {out['machine']} ({device}), median of {repeats}:"
    )
    for name, s in summary.items():
        log(
            f"  {name:<32} {s['throughput']:8.1f} images x models / s   "
            f"(end to end incl. start-up: {s['end_to_end_throughput']:.1f})"
        )
    log(f"  ratio {configs[-1]['name']} / {configs[0]['name']}: {out['ratio']:.2f}x")
    if out["ratio_vs_one_thread"] is not None:
        log(f"  ratio {configs[-1]['name']} / 1 process (1 thread): {out['ratio_vs_one_thread']:.2f}x")
    log(f"  identical predictions in every run: {same}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--limit", type=int, default=10_000, help="first N images of the CIFAR-10 test set")
    ap.add_argument("--model", action="append", default=None, help="default: the four CIFAR ResNets")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument(
        "--case", action="append", choices=["cifar"], help="the one case (for sweep.py --distributed)"
    )
    args = ap.parse_args(argv)
    res = run_benchmark(
        nproc=args.nproc,
        repeats=args.repeats,
        limit=args.limit,
        models=args.model,
        device=args.device,
        shared_data=args.shared_data,
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0 if res["same_predictions"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
