"""Data-parallel evaluation under torchrun (2 CPU processes, gloo): the store equals a single-process run's,
a rank killed mid-run leaves the store as it was, a rerun skips finished pairs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from generalization.evaluator import runner as ev
from generalization.evaluator.datasets import CountMismatchWarning
from generalization.evaluator.distributed import FAIL_HOOK, shard_bounds
from generalization.store.records import PredictionStore

RESNETS = ["cifar10/resnet20", "cifar10/resnet32", "cifar10/resnet44", "cifar10/resnet56"]
# meta fields that measure the run itself (time, hardware, ranks); everything else must be equal
RUN_META = {"wall_s", "images_per_s", "decode_s_shared", "device", "world_size", "sharding"}


def _entry() -> list[str]:
    return ["-m", "generalization", "evaluate"]  # the one CLI, in every rank


def _torchrun(models, data_root: Path, out: Path, torch_home: Path, env: dict | None = None, nproc: int = 2):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *_entry(),
    ]
    cmd += [a for m in models for a in ("--model", m)]
    cmd += ["--dataset", "cifar10-test", "--data-root", str(data_root), "--out", str(out)]
    full_env = {**os.environ, "TORCH_HOME": str(torch_home), "HF_HUB_OFFLINE": "1", **(env or {})}
    full_env.pop("GENERALIZATION_THREADS_PER_RANK", None)
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=900)


def _single(models, data_root: Path, out: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as fast as 2 threads on 2 busy cores (and no effect on the predictions)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CountMismatchWarning)
            ev.evaluate(
                models, ["cifar10-test"], out=out, data_root=data_root, progress=False, log=lambda *a: None
            )
    finally:
        torch.set_num_threads(threads)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.fixture(scope="module")
def store_resnet20(cifar_1000, torch_home, tmp_path_factory) -> Path:
    """A store holding resnet20 on the 1,000 lossless images (single process)."""
    out = tmp_path_factory.mktemp("store") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        _single(["cifar10/resnet20"], cifar_1000, out)
    return out


def test_shard_bounds_cover_the_rows_in_order():
    for n, b, w in [(10_000, 64, 2), (10_000, 64, 3), (50_000, 250, 8), (5, 64, 4), (0, 64, 2), (130, 64, 2)]:
        bounds = [shard_bounds(n, b, w, r) for r in range(w)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(bounds[r][1] == bounds[r + 1][0] for r in range(w - 1))
        # shards start on batch boundaries, so each rank runs exactly the single process's batches
        assert all(lo % b == 0 or lo == n for lo, _ in bounds)
        sizes = [-(-(hi - lo) // b) for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1


def _assert_same_store(single: Path, dist: Path, models) -> None:
    a, b = PredictionStore(single), PredictionStore(dist)
    assert np.array_equal(a.labels("cifar10-test"), b.labels("cifar10-test"))
    for m in models:
        pa, pb = a.predictions("evaluate", m, "cifar10-test"), b.predictions("evaluate", m, "cifar10-test")
        assert pa.shape == (10_000, 5) and np.array_equal(pa, pb), m
        ma, mb = a.get("evaluate", m, "cifar10-test").meta, b.get("evaluate", m, "cifar10-test").meta
        assert {k: v for k, v in ma.items() if k not in RUN_META} == {
            k: v for k, v in mb.items() if k not in RUN_META
        }
        assert mb["world_size"] == 2
    ta, tb = a.accuracy_table(), b.accuracy_table()
    assert len(ta) == len(models)
    assert ta.equals(tb)


@pytest.mark.parametrize(
    "models",
    [
        pytest.param(RESNETS[:1], id="resnet20"),
        pytest.param(RESNETS, id="four-resnets", marks=pytest.mark.slow),
    ],
)
def test_torchrun_matches_single_process(models, cifar_10000, torch_home, tmp_path, monkeypatch, shared_data):
    """The acceptance check (four ResNets, 10,000 images); the resnet20 case is its quick version."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    proc = _torchrun(models, cifar_10000, tmp_path / "dist", torch_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _single(models, cifar_10000, tmp_path / "single")
    _assert_same_store(tmp_path / "single", tmp_path / "dist", models)
    # top-1 recomputed from the raw labels file
    labels = np.load(shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
    top5 = PredictionStore(tmp_path / "dist").predictions("evaluate", models[0], "cifar10-test")
    assert PredictionStore(tmp_path / "dist").get("evaluate", models[0], "cifar10-test").top1_correct == int(
        (top5[:, 0] == labels).sum()
    )
    assert "images/s across 2 ranks" in proc.stdout


def test_killed_rank_leaves_the_store_as_it_was(store_resnet20, cifar_1000, torch_home, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(store_resnet20, out)
    before = _snapshot(out)
    # rank 1 dies after 2 batches of resnet32 (resnet20 is already stored and skipped)
    proc = _torchrun(RESNETS[:2], cifar_1000, out, torch_home, env={FAIL_HOOK: "1:2"})
    assert proc.returncode != 0
    assert f"{FAIL_HOOK}: exiting now" in proc.stderr
    # rank 0 says why it stopped: the gather lost rank 1, or the launcher's SIGTERM came first
    assert "lost the other ranks" in proc.stderr or "stopped by the launcher" in proc.stderr, proc.stderr[
        -3000:
    ]
    assert _snapshot(out) == before
    assert not (out / "records" / "cifar10-test" / "evaluate" / "cifar10%2Fresnet32.json").exists()


def test_rerun_skips_finished_pairs(store_resnet20, cifar_1000, torch_home, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(store_resnet20, out)
    rec20 = out / "records" / "cifar10-test" / "evaluate" / "cifar10%2Fresnet20.json"
    before20 = rec20.read_bytes()
    proc = _torchrun(RESNETS[:2], cifar_1000, out, torch_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cifar10/resnet32 on cifar10-test [fp32]" in proc.stdout
    assert "cifar10/resnet20 on cifar10-test [fp32]" not in proc.stdout  # finished: skipped, not rerun
    assert rec20.read_bytes() == before20
    after = _snapshot(out)
    proc = _torchrun(RESNETS[:2], cifar_1000, out, torch_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 2 pairs already in" in proc.stdout
    assert _snapshot(out) == after


TINY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(3 * 8 * 8, 1000).double()
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g, dtype=torch.float64))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(x.double(), 8).flatten(1))


def build():
    return Tiny(), {"input_size": 64, "resize_size": 73}
"""


def test_skip_bad_images_across_ranks(shared_data, tmp_path, monkeypatch):
    """Each rank skips the bad images of its shard; rank 0 stores what a single process stores."""
    files = sorted((shared_data / "imagenet-sample").glob("*.JPEG"))[:12]
    root = tmp_path / "imgs"
    root.mkdir()
    for f in files:
        (root / f.name).symlink_to(f)
    bad = [files[1], files[-1]]  # one in each rank's shard (batch size 4: rows 0-3 on rank 0, 4-11 on rank 1)
    for f in bad:
        (root / f.name).unlink()
        (root / f.name).write_bytes(f.read_bytes()[:2000])  # truncated
    man = tmp_path / "twelve.json"
    man.write_text(json.dumps({"image_filenames": [[f.stem, f.name.split("_")[0]] for f in files]}))
    (tmp_path / "tinymod.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    flags = ["--model", "tinymod:build", "--dataset", str(man), "--data-root", str(root), "--batch-size", "4"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *_entry(), *flags,
         "--out", str(tmp_path / "dist"), "--skip-bad-images"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev.evaluate(["tinymod:build"], [str(man)], out=tmp_path / "single", data_root=root, batch_size=4,
                skip_bad_images=True, progress=False, log=lambda *a: None)  # fmt: skip
    a, b = PredictionStore(tmp_path / "single"), PredictionStore(tmp_path / "dist")
    assert np.array_equal(a.labels("twelve"), b.labels("twelve")) and len(b.labels("twelve")) == 10
    pa, pb = (
        a.predictions("evaluate", "tinymod:build", "twelve"),
        b.predictions("evaluate", "tinymod:build", "twelve"),
    )
    assert np.array_equal(pa, pb)
    ra, rb = a.get("evaluate", "tinymod:build", "twelve"), b.get("evaluate", "tinymod:build", "twelve")
    assert rb.meta["flag"] == ra.meta["flag"] and "2 unreadable image(s) skipped" in rb.meta["flag"]
    assert rb.meta["skipped_images"] == ra.meta["skipped_images"]
    assert [f.name in s for f, s in zip(bad, rb.meta["skipped_images"], strict=True)] == [True, True]
    # without --skip-bad-images the bad image fails every rank, naming the file
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *_entry(), *flags,
         "--out", str(tmp_path / "dist2")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert bad[0].name in proc.stderr and "--skip-bad-images" in proc.stderr
    assert not (tmp_path / "dist2" / "records").exists()
