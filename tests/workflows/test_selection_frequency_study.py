"""The selection-frequency study's frequency-shifted resamples (MatchedFrequency on CIFAR-10H frequencies, scored
on the 30 CIFAR-10.1 release models).

Expected values are computed here with numpy from the raw files (votes .npy, labels .npy, the release's
prediction JSONs), never from the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from generalization.analysis import selection_frequency as sf
from generalization.sampler.strategies import HISTOGRAM_BINS, shifted_targets
from generalization.workflows import selection_frequency_study as study

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_matched_frequency_on_real_frequencies_hits_targets_and_reports_shortfalls(cifar10h_raw):
    counts, labels, _, freq = cifar10h_raw
    df = sf.frequencies_from_votes(counts, labels)
    targets = shifted_targets(df, 200, "down:0.3", edges=HISTOGRAM_BINS)
    assert (targets.sum(axis=1) == 200).all()
    res = study.frequency_shifted_resample(df, targets, seed=7)
    ids = np.asarray([im for im, _ in res.manifest["image_filenames"]])
    cls = np.asarray([c for _, c in res.manifest["image_filenames"]])
    assert len(set(ids.tolist())) == len(ids)
    np.testing.assert_array_equal(labels[ids], cls)
    # independent: per (class, bin) the achieved count is min(target, available)
    bins = (freq >= 0.2).astype(int) + (freq >= 0.4) + (freq >= 0.6) + (freq >= 0.8)
    short = {}
    for c in range(10):
        for b in range(5):
            avail = int(((labels == c) & (bins == b)).sum())
            want = int(targets.loc[c, b])
            got = int(((labels[ids] == c) & (bins[ids] == b)).sum())
            assert got == min(want, avail), (c, b)
            if avail < want:
                short[(c, b)] = want - avail
    assert short, "this shift must run out of low-frequency candidates somewhere"
    reported = {(int(r["class"]), int(r["bin"])): int(r["missing"]) for _, r in res.shortfalls.iterrows()}
    assert reported == short
    assert res.manifest["is_valid"] is False
    assert sum(res.manifest["shortfalls"].values()) == sum(short.values())
    # with no shift every target is met exactly
    ok = study.frequency_shifted_resample(df, shifted_targets(df, 200, 0.0), seed=7)
    assert ok.manifest["is_valid"] and len(ok.shortfalls) == 0 and len(ok.manifest["image_filenames"]) == 2000


_SCRIPT = """
import sys
import numpy as np
from generalization.analysis import selection_frequency as sf
from generalization.sampler.strategies import shifted_targets, write_outputs
from generalization.workflows import selection_frequency_study as study
counts = sf.load_votes(sys.argv[1])
labels = np.load(sys.argv[2], allow_pickle=False)
df = sf.frequencies_from_votes(counts, labels)
t = shifted_targets(df, 100, 0.4, edges=sf.FINE_EDGES)
write_outputs(study.frequency_shifted_resample(df, t, seed=3, edges=sf.FINE_EDGES), sys.argv[3], figure=False)
"""


def test_manifests_identical_across_hash_seeds(votes_npy, cifar10_labels_npy, tmp_path):
    script = _SCRIPT
    outs = []
    for hs in ("1", "12345"):
        out = tmp_path / f"h{hs}"
        env = {**os.environ, "PYTHONHASHSEED": hs}
        subprocess.run([sys.executable, "-c", script, str(votes_npy), str(cifar10_labels_npy), str(out)],
                       check=True, env=env, cwd=PROJECT_ROOT, timeout=120)  # fmt: skip
        outs.append(out)
    a, b = ((o / "manifest.json").read_bytes() for o in outs)
    assert a == b
    assert (outs[0] / "shortfalls.csv").read_bytes() == (outs[1] / "shortfalls.csv").read_bytes()
    assert len(json.loads(a)["image_filenames"]) == 1000


def test_shift_sweep_gap_grows(cifar10h_raw):
    counts, labels, preds, _ = cifar10h_raw
    df = sf.frequencies_from_votes(counts, labels)
    s, pm = study.shift_sweep(preds, labels, df, [0.0, 0.6], per_class=100, edges=sf.FINE_EDGES, n_bootstrap=20)
    assert list(s["n_images"]) == [1000, 1000]
    assert s["mean_gap"].iloc[1] > s["mean_gap"].iloc[0]
    assert s["mean_frequency"].iloc[1] < s["mean_frequency"].iloc[0]
    assert len(pm) == 60
