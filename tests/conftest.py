"""Shared fixtures. Real data lives in ../shared/data (read-only): tests skip without it, and fail
without it when the CI environment variable is set."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENERALIZATION_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _require(path: Path) -> Path:
    if not path.exists():
        msg = f"real data not found: {path} (see ../shared/README.md)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(autouse=True)
def _scoped_test_set_declarations():
    """Test sets a test declares (manifests, store records) are forgotten after it: no test sees another's."""
    from generalization.test_sets import declarations

    with declarations():
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The root of ../shared/data."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def imagenetv2_release(shared_data: Path) -> Path:
    return _require(shared_data / "ImageNetV2")


@pytest.fixture(scope="session")
def cifar101_release(shared_data: Path) -> Path:
    return _require(shared_data / "CIFAR-10.1")


@pytest.fixture(scope="session")
def cifar10_labels_npy(shared_data: Path) -> Path:
    return _require(shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")


@pytest.fixture(scope="session")
def votes_npy(shared_data: Path) -> Path:
    """CIFAR-10H's vote counts (10,000 x 10, official order)."""
    return _require(shared_data / "cifar10h" / "cifar10h-counts.npy")


@pytest.fixture(scope="session")
def cifar10h_raw(votes_npy, cifar10_labels_npy, cifar101_release):
    """CIFAR-10H votes, CIFAR-10 test labels, the CIFAR-10.1 release models' CIFAR-10 predictions and each image's
    selection frequency, read straight from the raw files with numpy (the expected values of the study's tests)."""
    counts = np.load(votes_npy, allow_pickle=False)
    labels = np.load(cifar10_labels_npy, allow_pickle=False).astype(np.int64)
    folder = cifar101_release / "model_predictions" / "original_predictions"
    preds = {f.name.removesuffix("_predictions.json"): np.asarray(json.loads(f.read_text()), dtype=np.int64)
             for f in sorted(folder.glob("*_predictions.json"))}  # fmt: skip
    freq = counts[np.arange(len(labels)), labels] / counts.sum(axis=1)
    return counts, labels, preds, freq


@pytest.fixture(scope="session")
def torch_home(shared_data: Path, tmp_path_factory) -> Path:
    """A $TORCH_HOME whose hub/checkpoints holds the four CIFAR ResNet files, as a download would leave it."""
    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for f in sorted((shared_data / "cifar10-resnets").glob("*.th")):
        shutil.copy(f, ckpt / f.name)
    return home


@pytest.fixture(scope="session")
def cifar_1000(shared_data: Path, tmp_path_factory) -> Path:
    """A root holding cifar-10-batches-py/test_batch of the official format: the 1,000 lossless images."""
    from builders import assemble_cifar10_test

    root = tmp_path_factory.mktemp("cifar1000")
    assemble_cifar10_test(shared_data, root, 1000)
    return root


@pytest.fixture(scope="session")
def cifar_10000(shared_data: Path, tmp_path_factory) -> Path:
    """The same with all 10,000 images in official order (1,000 lossless, then the JPEG copies)."""
    from builders import assemble_cifar10_test

    root = tmp_path_factory.mktemp("cifar10000")
    assemble_cifar10_test(shared_data, root, 10_000)
    return root
