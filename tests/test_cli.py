"""The command-line contract: reproduce, analyze, import."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

PROJECT = Path(__file__).resolve().parents[1]
ACC_COLUMNS = ["source", "model", "test_set", "n", "top1_correct", "top1", "top1_ci_low", "top1_ci_high",
               "top5_correct", "top5", "top5_ci_low", "top5_ci_high"]  # fmt: skip


def run(*args, cwd=None):
    res = subprocess.run([sys.executable, "-m", "generalization", *map(str, args)], capture_output=True, text=True,
                         cwd=cwd)  # fmt: skip
    return res


@pytest.fixture(scope="module")
def reproduced(imagenetv2_release, cifar101_release, cifar10_labels_npy, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    r = run("reproduce", "--imagenetv2-release", imagenetv2_release, "--cifar101-release", cifar101_release,
            "--cifar10-labels", cifar10_labels_npy, "--out", out, "--n-bootstrap", "200")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_reproduce_contract(reproduced):
    acc = pd.read_csv(reproduced / "accuracies.csv")
    assert list(acc.columns[: len(ACC_COLUMNS)]) == ACC_COLUMNS
    assert len(acc) == 67 * 4 + 30 * 3
    r = acc.set_index(["model", "test_set"]).loc[("resnet152", "imagenetv2-matched-frequency")]
    assert (r["n"], r["top1_correct"]) == (10000, 6702)
    ci = stats.binomtest(6702, 10000).proportion_ci(method="exact")
    assert r["top1_ci_low"] == pytest.approx(100 * ci.low, rel=1e-9)
    assert r["top1_ci_high"] == pytest.approx(100 * ci.high, rel=1e-9)
    cifar = acc[acc["test_set"].str.startswith("cifar")]
    assert cifar["top5"].isna().all()
    fits = pd.read_csv(reproduced / "fits.csv")
    for col in ["original", "new", "scale", "model_set", "n_models", "slope", "intercept", "r", "band_level", "n_bootstrap"]:
        assert col in fits.columns
    assert len(fits) == 5 * 3
    for name in ["REPORT.md", "figure1.png", "imagenet_linear.png", "imagenet_probit.png", "cifar10_logit.png"]:
        assert (reproduced / name).stat().st_size > 1000
    report = (reproduced / "REPORT.md").read_text()
    assert "fv_16k" in report and "Trend fits" in report


def test_reproduce_with_cifar10_root(imagenetv2_release, cifar101_release, cifar10_labels_npy, reproduced, tmp_path):
    labels = np.load(cifar10_labels_npy)
    (tmp_path / "c" / "cifar-10-batches-py").mkdir(parents=True)
    with open(tmp_path / "c" / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"labels": [int(v) for v in labels], b"data": np.zeros((10000, 3072), np.uint8),
                     b"batch_label": b"testing batch 1 of 1", b"filenames": [b"x.png"] * 10000}, f)  # fmt: skip
    r = run("reproduce", "--cifar101-release", cifar101_release, "--cifar10-root", tmp_path / "c",
            "--out", tmp_path / "out", "--n-bootstrap", "50")  # fmt: skip
    assert r.returncode == 0, r.stderr
    a = pd.read_csv(tmp_path / "out" / "accuracies.csv")
    b = pd.read_csv(reproduced / "accuracies.csv")
    b = b[b["test_set"].str.startswith("cifar")].reset_index(drop=True)
    pd.testing.assert_frame_equal(a[ACC_COLUMNS], b[ACC_COLUMNS])


def test_reproduce_without_arguments_rebuilds_from_committed_results(reproduced, tmp_path):
    """A fresh clone: only results/accuracies.csv, no data, no flags."""
    (tmp_path / "results").mkdir()
    shutil.copy(reproduced / "accuracies.csv", tmp_path / "results" / "accuracies.csv")
    r = run("reproduce", "--n-bootstrap", "200", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ["REPORT.md", "figure1.png", "fits.csv", "cifar10_linear.png"]:
        assert (tmp_path / "results" / name).exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / "fits.csv"), pd.read_csv(reproduced / "fits.csv"))


def test_fit_models_option(reproduced, tmp_path):
    fits = pd.read_csv(reproduced / "fits.csv").set_index(["new", "scale"])
    assert fits.loc[("imagenetv2-matched-frequency", "linear"), ["model_set", "n_models"]].tolist() == ["paper", 64]
    r = run("analyze", "--accuracies", reproduced / "accuracies.csv", "--out", tmp_path / "o", "--n-bootstrap", "20",
            "--fit-models", "release")  # fmt: skip
    assert r.returncode == 0, r.stderr
    fits = pd.read_csv(tmp_path / "o" / "fits.csv").set_index(["new", "scale"])
    assert fits.loc[("imagenetv2-matched-frequency", "linear"), ["model_set", "n_models"]].tolist() == ["release", 67]
    r = run("analyze", "--accuracies", reproduced / "accuracies.csv", "--out", tmp_path / "p", "--fit-models", "nope")
    assert r.returncode == 2 and "unknown model set 'nope'" in r.stderr


def test_reproduce_without_anything_says_what_to_do(tmp_path):
    r = run("reproduce", cwd=tmp_path)
    assert r.returncode == 2
    assert "accuracies.csv" in r.stderr and "--imagenetv2-release" in r.stderr


def test_import_and_analyze_all_sources(imagenetv2_release, shared_data, tmp_path):
    store = tmp_path / "store"
    d = shared_data / "published-results-samples"
    for args in (["imagenetv2", imagenetv2_release],
                 ["timm", d / "results-imagenet.csv", d / "results-imagenetv2-matched-frequency.csv"],
                 ["testbed", d / "robustness_top1s.csv"]):  # fmt: skip
        r = run("import", *args, "--store", store)
        assert r.returncode == 0, r.stderr
    r = run("verify-store", store)
    assert r.returncode == 0 and "all verified" in r.stdout, r.stderr
    assert "(268 with predictions" in r.stdout  # 67 release models x 4 sets; the published rows have none
    r = run("analyze", "--store", store, "--out", tmp_path / "out", "--n-bootstrap", "100")
    assert r.returncode == 0, r.stderr
    acc = pd.read_csv(tmp_path / "out" / "accuracies.csv")
    assert set(acc["source"]) == {"imagenetv2-release", "timm", "testbed"}
    assert (tmp_path / "out" / "imagenet_linear.png").exists()
    per_model = pd.read_csv(tmp_path / "out" / "per_model.csv")
    assert {"timm", "testbed"} <= set(per_model["source"])


def test_import_missing_release_is_a_clear_error(tmp_path):
    r = run("import", "imagenetv2", tmp_path / "missing", "--store", tmp_path / "s")
    assert r.returncode == 2
    assert "missing" in r.stderr and "not found" in r.stderr
