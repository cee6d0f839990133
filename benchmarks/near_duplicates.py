"""Benchmark and acceptance numbers for near-duplicate detection on real CIFAR-10 test images.

1. Search: the 10,000 JPEG-75 copies of the CIFAR-10 test set against the whole test set laid out in the
   official order (lossless rows 0..999 from cifar10-test-first1000, JPEG copies for rows 1000..9999, since
   the lossless test_batch is not in ../shared), exact pixel-L2 kNN, timed on --threads CPU threads.
2. --acceptance: original set = the 1,000 lossless images, candidates = the 10,000 JPEG copies; recall@1 and
   the separation of duplicate / non-duplicate distances for l2, dssim and cnn (seeded random-init
   ResNet-18: no pretrained weights offline), then the pipeline's decisions with the default thresholds.

    .venv/bin/python benchmarks/near_duplicates.py [--threads 2] [--k 5] [--acceptance] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SHARED = Path(
    os.environ.get("GENERALIZATION_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def official_jpeg_paths(labels: np.ndarray) -> list[str]:
    """Relative JPEG path of every official test row: the k-th image of class c is <c>/<k:04d>.jpg."""
    seen = np.zeros(10, dtype=int)
    out = []
    for c in labels.astype(int):
        out.append(f"{CLASSES[c]}/{seen[c]:04d}.jpg")
        seen[c] += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--acceptance", action="store_true")
    args = ap.parse_args()

    import torch

    from generalization.sampler import near_duplicates as nd

    torch.set_num_threads(args.threads)
    labels = np.load(SHARED / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
    t0 = time.perf_counter()
    cand = nd.load_image_set(SHARED / "cifar10-test-jpeg75" / "test")
    orig = nd.load_image_set(SHARED / "cifar10-test-first1000" / "test_data_first1000.npy")
    t_load = time.perf_counter() - t0
    pos = {c: i for i, c in enumerate(cand.ids)}
    order = np.array([pos[p] for p in official_jpeg_paths(labels)])  # official row -> candidate position
    jpeg_official = cand.images[order]
    test_official = jpeg_official.copy()
    test_official[:1000] = orig.images

    print(
        f"load: {len(cand)} JPEGs + {len(orig)} lossless in {t_load:.1f} s; "
        f"threads={torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}"
    )
    t0, c0 = time.perf_counter(), time.process_time()
    d, i = nd.knn(jpeg_official, test_official, args.k, device=args.device)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    n = len(jpeg_official)
    # CPU time / threads is what the wall time would be on otherwise idle cores (the box may be shared).
    print(
        f"search: exact pixel-L2 {n} x {len(test_official)} ({32 * 32 * 3} values), k={args.k}, "
        f"device={args.device}: {dt:.2f} s wall ({n * len(test_official) / dt / 1e6:.1f} M distances/s), "
        f"{dc:.1f} s CPU over {torch.get_num_threads()} threads (= {dc / torch.get_num_threads():.1f} s "
        f"if the cores were otherwise idle); load average now {os.getloadavg()[0]:.1f}"
    )
    rows = np.arange(n)
    print(
        f"  rows 0..999: nearest is the own lossless source for {(i[:1000, 0] == rows[:1000]).sum()}/1000; "
        f"rows 1000..9999: nearest is itself at distance 0 for "
        f"{((i[1000:, 0] == rows[1000:]) & (d[1000:, 0] == 0)).sum()}/9000"
    )

    if not args.acceptance:
        return
    row_of = np.empty(n, dtype=int)
    row_of[order] = rows
    is_dup = row_of < 1000
    print("\nacceptance: originals = 1,000 lossless, candidates = 10,000 JPEG copies")
    times = {}
    t0 = time.perf_counter()
    nb = nd.find_neighbors(cand, orig, metrics=["l2", "dssim"], k=3, shortlist=3, device=args.device)
    times["l2+dssim neighbours"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    nb_cnn = nd.find_neighbors(cand, orig, metrics=["cnn"], k=3, cnn_weights="random", device=args.device)
    times["cnn neighbours (random resnet18 @32px)"] = time.perf_counter() - t0
    import pandas as pd

    nb_all = pd.concat([nb, nb_cnn], ignore_index=True)
    print("| metric | recall@1 | duplicates: median / max | non-duplicates: min / 1st pct / median |")
    print("|---|---|---|---|")
    for metric in ("l2", "dssim", "cnn"):
        first = nb_all[(nb_all["metric"] == metric) & (nb_all["pool"] == "original") & (nb_all["rank"] == 1)]
        first = first.set_index("candidate_index").reindex(range(n))
        dist = first["distance"].to_numpy()
        rec = (first["neighbor_index"].to_numpy()[is_dup] == row_of[is_dup]).mean()
        dd, od = dist[is_dup], dist[~is_dup]
        print(
            f"| {metric} | {rec:.4f} | {np.median(dd):.4g} / {dd.max():.4g} | "
            f"{od.min():.4g} / {np.percentile(od, 1):.4g} / {np.median(od):.4g} |"
        )
    thr = nd.resolve_thresholds(["l2", "dssim", "cnn"], None, cand.images.shape[1:])
    dec, links = nd.decide(nb_all, cand.ids, orig.ids, thr)
    print(f"\ndecisions with thresholds {thr}:")
    print(dec["reason"].value_counts().sort_index().to_string())
    copies = dec[is_dup]
    print(
        f"copies of the 1,000 originals excluded: {(copies['decision'] == 'excluded').sum()}, "
        f"with their own source as duplicate_of: {(copies['duplicate_of'] == copies.index.map(lambda j: str(row_of[j]))).sum()}"
    )
    extra = dec[~is_dup & (dec["decision"] == "excluded")]
    print(f"other candidates excluded: {len(extra)}")
    for r in extra.itertuples():
        print(
            f"  {r.candidate_id} (official row {row_of[r.candidate_index]}): {r.reason} -> {r.duplicate_of}"
        )
    survivors = dec[dec["reason"] == "survivor"]
    for r in survivors.itertuples():
        print(
            f"  survivor {r.candidate_id} (official row {row_of[r.candidate_index]}), component size {r.component_size}"
        )
    dup_idx = np.flatnonzero(is_dup)
    other_links = links[
        ~np.isin(links["candidate_index"], dup_idx)
        | ((links["pool"] == "candidate") & ~np.isin(links["neighbor_index"], dup_idx))
    ]
    print("links between other candidates, or from them to originals:")
    print(other_links[["candidate_id", "pool", "neighbor_id", "metric", "distance"]].to_string(index=False))
    for k, v in times.items():
        print(f"time: {k}: {v:.1f} s")


if __name__ == "__main__":
    main()
