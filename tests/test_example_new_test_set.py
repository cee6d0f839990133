"""The worked example runs through the CLI on real data (examples/new_test_set_cifar10.sh) and its
numbers hold up: the null split shows no gap, the frequency-shifted one does, and the original-set
accuracies equal an independent computation (the checkpoints run by hand on the JPEG files)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="session")
def example_run(shared_data, torch_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("example") / "out"
    env = dict(os.environ, TORCH_HOME=str(torch_home), HF_HUB_OFFLINE="1",
               GENERALIZATION_CLI=f"{sys.executable} -m generalization",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", str(ROOT / "examples" / "new_test_set_cifar10.sh"), str(out), "--data",
                           str(shared_data)], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"example wall time {time.perf_counter() - t0:.0f} s")
    return out


def _independent_original_top1(shared_data: Path, torch_home: Path) -> dict[str, tuple[int, int]]:
    """Top-1 counts on the original (first 1,000 official test images, as their JPEG copies) computed here:
    files located from the official labels, pixels by PIL, normalisation and the network by hand."""
    import torch
    from PIL import Image

    from generalization.evaluator.models import CIFAR_RESNET_FILES, CifarResNet

    labels = np.load(shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")[:1000]
    labels = labels.astype(np.int64)
    seen = np.zeros(10, dtype=np.int64)
    x = np.empty((1000, 32, 32, 3), dtype=np.uint8)
    for r, c in enumerate(labels):
        with Image.open(shared_data / "cifar10-test-jpeg75" / "test" / CLASSES[c] / f"{seen[c]:04d}.jpg") as im:
            x[r] = np.asarray(im.convert("RGB"))
        seen[c] += 1
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    t = torch.from_numpy(((x / 255.0 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    out = {}
    for depth, (fname, _) in CIFAR_RESNET_FILES.items():
        ckpt = torch.load(torch_home / "hub" / "checkpoints" / fname, map_location="cpu", weights_only=True)
        net = CifarResNet(depth)
        net.load_state_dict({k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()})
        with torch.inference_mode():
            pred = net.eval()(t).argmax(1).numpy()
        out[f"cifar10/resnet{depth}"] = (int((pred == labels).sum()), 1000)
    return out


@pytest.mark.slow
def test_example_summary_meets_the_contract(example_run, shared_data, torch_home):
    s = pd.read_csv(example_run / "summary.csv", keep_default_na=False)  # the variant "null" is not NaN
    assert list(s.columns) == ["variant", "model", "n_original", "original_top1", "n_new", "new_top1", "gap",
                               "gap_ci_low", "gap_ci_high"]
    models = [f"cifar10/resnet{d}" for d in (20, 32, 44, 56)]
    assert sorted(s["variant"].unique()) == ["null", "shifted"]
    for v in ("null", "shifted"):
        assert sorted(s.loc[s["variant"] == v, "model"]) == models
    assert (s["n_original"] == 1000).all() and (s["n_new"] == 1000).all()
    null, shifted = s[s["variant"] == "null"], s[s["variant"] == "shifted"]
    assert abs(null["gap"].mean()) <= 3
    assert ((null["gap_ci_low"] <= 0) & (null["gap_ci_high"] >= 0)).sum() >= 3
    assert shifted["gap"].mean() >= null["gap"].mean() + 1.5
    assert np.allclose(s["gap"], s["original_top1"] - s["new_top1"], atol=1e-3)
    # original-set accuracies: exactly the independent computation
    ref = _independent_original_top1(shared_data, torch_home)
    for r in s.itertuples():
        correct, n = ref[r.model]
        assert r.original_top1 == pytest.approx(100 * correct / n, abs=1e-4)
    # the figures and the report name the declared pair
    a = example_run / "analysis"
    for scale in ("linear", "probit", "logit"):
        assert (a / f"cifar10-jpeg75-first1000_{scale}.png").stat().st_size > 10_000
    assert "cifar10-jpeg75-new-shifted" in (a / "REPORT.md").read_text()


@pytest.mark.slow
def test_example_ids_and_exclusions_are_one_scheme(example_run):
    import json

    cand = pd.read_csv(example_run / "candidates.csv")
    orig = pd.read_csv(example_run / "original.csv")
    assert len(orig) == 1000 and len(cand) == 9000
    assert not set(orig["image_id"]) & set(cand["image_id"])
    excluded = set(pd.read_csv(example_run / "near-duplicates" / "exclusions.csv")["image_id"])
    assert excluded <= set(cand["image_id"])
    for v in ("null", "shifted"):
        m = json.loads((example_run / v / "manifest.json").read_text())
        ids = [i for i, _ in m["image_filenames"]]
        assert len(ids) == 1000 and set(ids) <= set(cand["image_id"]) and not set(ids) & excluded
        assert m["image_files"] == ids and m["original"] == "cifar10-jpeg75-first1000"
        assert m["classes"] == list(CLASSES)
