"""Shared fixtures. Real data lives in ../shared/data (read-only): tests skip without it, and fail
without it when the CI environment variable is set."""

from __future__ import annotations

import os
from pathlib import Path

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
