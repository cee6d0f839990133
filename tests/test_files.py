"""Ground-floor helpers shared by several subsystems: the figure writer, the CIFAR-10 batch reader, devices."""

from __future__ import annotations

import io
import pickle

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from generalization.devices import resolve_device  # noqa: E402
from generalization.files import DataError, cifar10_test_batch, load_cifar10_batch, save_figure  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 2])
    ax.set_xlabel("x (units)")
    return fig


def test_save_figure_is_byte_reproducible(tmp_path):
    a = save_figure(_figure(), tmp_path / "a.png", dpi=80)
    b = save_figure(_figure(), tmp_path / "b.png", dpi=80)
    data = a.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == b.read_bytes()
    assert b"Matplotlib" not in data
    # the control: matplotlib's default PNG names its version, so it changes with every upgrade
    buf = io.BytesIO()
    fig = _figure()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    assert b"Matplotlib" in buf.getvalue()


def test_load_cifar10_batch_reads_channel_major_rows(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(5, 3072), dtype=np.uint8)
    labels = [3, 0, 9, 1, 1]
    root = tmp_path / "root"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": b"t"}, protocol=2))
    assert cifar10_test_batch(root) == path
    pixels, got = load_cifar10_batch(path)
    assert pixels.shape == (5, 32, 32, 3) and pixels.dtype == np.uint8
    # row i holds 1,024 red values, then green, then blue, each row-major over the 32 x 32 image
    i, y, x, c = 2, 7, 30, 1
    assert pixels[i, y, x, c] == data[i, c * 1024 + y * 32 + x]
    assert got.tolist() == labels and got.dtype == np.int64
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 0, 10, 1, 1]}, protocol=2))
    with pytest.raises(DataError, match="labels outside 0..9"):
        load_cifar10_batch(path)
    path.write_bytes(pickle.dumps({b"data": data[:, :100], b"labels": labels}, protocol=2))
    with pytest.raises(DataError, match="N x 3072 uint8"):
        load_cifar10_batch(path)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "test_batch").write_bytes(b"")
    assert cifar10_test_batch(flat) == flat / "test_batch"


def test_resolve_device():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="no CUDA device"):
            resolve_device("cuda", local_rank=1)
    else:
        assert resolve_device("cuda", local_rank=0) == torch.device("cuda:0")
        with pytest.raises(DataError, match="--nproc-per-node"):
            resolve_device("auto", local_rank=torch.cuda.device_count())
