"""Test-fixture builders: write images as a batch in the official CIFAR-10 python format
(:func:`write_cifar10_batch`) and assemble the official CIFAR-10 test batch from the pieces in the shared
data (:func:`assemble_cifar10_test`), for tests (tests/conftest.py) and benchmarks (benchmarks/sweep.py,
benchmarks/sweep_distributed.py, which put tests/ on sys.path). Moved out of
:mod:`generalization.evaluator.datasets`: they build inputs, the package only reads them.
Also :func:`tree_hashes`, the snapshot of a folder that tests compare to show a command changed nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from generalization.evaluator.dataset_registry import CIFAR10_CLASSES
from generalization.files import DataError, load_npy


def write_cifar10_batch(
    path: str | os.PathLike,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    filenames: list[str] | None = None,
    batch_label: str = "testing batch 1 of 1",
) -> Path:
    """Write images (N x 32 x 32 x 3 uint8, RGB) as a batch in the official CIFAR-10 python format: a pickled
    dict with ``b'data'`` (N x 3072 uint8, channel-major rows), ``b'labels'`` (list of int),
    ``b'batch_label'`` and ``b'filenames'`` (bytes). Written atomically."""
    import pickle

    from generalization.files import atomic_write_bytes

    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[1:] != (32, 32, 3) or pixels.dtype != np.uint8:
        raise DataError(f"{path}: expected N x 32 x 32 x 3 uint8 images, got {pixels.dtype} {pixels.shape}")
    n = len(pixels)
    names = filenames or [f"test_{i:05d}.png" for i in range(n)]
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(pixels.transpose(0, 3, 1, 2).reshape(n, 3072)),
        b"filenames": [s.encode() for s in names],
    }
    return atomic_write_bytes(path, pickle.dumps(batch, protocol=2))


def assemble_cifar10_test(
    shared_data: str | os.PathLike, out_root: str | os.PathLike, n: int = 10_000
) -> Path:
    """Build ``<out_root>/cifar-10-batches-py/test_batch`` in the official format from the pieces in
    ``../shared/data`` (for tests and benchmarks; the official file is not available there).

    Rows 0..999 are the lossless official images (``cifar10-test-first1000``); rows 1000..n-1 are the JPEG
    (quality 75) copies of ``cifar10-test-jpeg75``, placed by the official labels: the k-th image of class c in
    the official order is ``test/<class name>/<k:04d>.jpg``. ``n`` <= 1000 gives a lossless prefix.
    """
    from PIL import Image

    shared = Path(shared_data)
    first = load_npy(shared / "cifar10-test-first1000" / "test_data_first1000.npy")
    labels = load_npy(shared / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy").astype(
        np.int64
    )
    if n <= len(first):
        pixels = first[:n]
    else:
        pixels = np.empty((n, 32, 32, 3), dtype=np.uint8)
        pixels[: len(first)] = first
        seen = np.zeros(10, dtype=np.int64)
        for r in range(n):
            c = labels[r]
            k = seen[c]
            seen[c] += 1
            if r >= len(first):
                jpg = shared / "cifar10-test-jpeg75" / "test" / CIFAR10_CLASSES[c] / f"{k:04d}.jpg"
                with Image.open(jpg) as im:
                    pixels[r] = np.asarray(im.convert("RGB"))
    return write_cifar10_batch(Path(out_root) / "cifar-10-batches-py" / "test_batch", pixels, labels[:n])


def tree_hashes(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under ``root`` (but not under ``skip``) -> the SHA-256 of its bytes (a link: its target), to
    check that a command changed nothing outside its output folder."""
    out = {}
    for p in sorted(root.rglob("*")):
        if skip is not None and (p == skip or skip in p.parents):
            continue
        if p.is_symlink():
            out[str(p)] = "link:" + str(p.readlink())
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process: ``(exit code, stdout, stderr)``; a traceback on stderr fails the test."""
    from generalization.cli import main

    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err
