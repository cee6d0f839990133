"""Ground-floor helpers shared by several subsystems: the figure writer, the CIFAR-10 batch reader, devices, the
duplicate-id check, the one CSV writer."""

from __future__ import annotations

import ast
import io
import json
import pickle
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from generalization.devices import resolve_device  # noqa: E402
from generalization.files import (  # noqa: E402
    DataError,
    check_unique_ids,
    cifar10_test_batch,
    load_cifar10_batch,
    save_figure,
)


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


def test_check_unique_ids_names_the_first_repeat():
    check_unique_ids(["a", "b", 1], "m.json")
    with pytest.raises(DataError) as e:
        check_unique_ids(["a", "b", "b", "a"], "m.json")
    assert str(e.value) == "m.json: image id 'b' is listed twice; one image would be scored twice"
    with pytest.raises(DataError, match=r"m.json: image id 'dog/0' is listed twice \(as 'cat/0': both name the file '0'\)"):
        check_unique_ids(["cat/0", "dog/0"], "m.json", key=lambda i: i.rsplit("/", 1)[-1])
    check_unique_ids(["cat/0", "dog/0"], "m.json")  # without a key they are two images


def test_every_manifest_reader_gives_the_one_duplicate_id_message(tmp_path):
    """The evaluator's manifest loader (exact ids and ids matched to files by stem), the sampler's manifest
    reader and table manifests, the release importer and the store all refuse a repeated id in the same words."""
    import pandas as pd

    from generalization.evaluator.datasets import load_manifest_dataset
    from generalization.sampler.manifests import table_manifest
    from generalization.sampler.strategies import read_manifest_pairs
    from generalization.store.importers import _check_dataset_json
    from generalization.store.records import PredictionStore

    said = "image id 'a' is listed twice; one image would be scored twice"
    man = tmp_path / "twice.json"
    d = {"image_filenames": [["a", "n01440764"], ["b", "n01443537"], ["a", "n01440764"]]}
    man.write_text(json.dumps(d))
    readers = {
        "evaluator": lambda: load_manifest_dataset(tmp_path, man),
        "sampler": lambda: read_manifest_pairs(man),
        "importer": lambda: _check_dataset_json(man, d),
        "table": lambda: table_manifest(pd.DataFrame({"image_id": ["a", "b", "a"], "class": ["x", "y", "x"]}),
                                        name="mine", source=man),
    }
    for who, read in readers.items():
        with pytest.raises(DataError) as e:
            read()
        assert str(e.value) == f"{man}: {said}", who
    with pytest.raises(DataError, match=re.escape(f"labels of t: {said}")):
        PredictionStore(tmp_path / "s").put_labels("t", np.array([0, 1, 0]), num_classes=2, image_ids=["a", "b", "a"])
    # ids matched to files by name: two ids that name one file are one image listed twice
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "0.png").write_bytes(b"")
    man.write_text(json.dumps({"image_filenames": [["cat/0", 0], ["dog/0", 1]], "num_classes": 2}))
    with pytest.raises(DataError) as e:
        load_manifest_dataset(tmp_path / "imgs", man)
    assert str(e.value) == f"{man}: image id 'dog/0' is listed twice (as 'cat/0': both name the file '0'); one " \
                           "image would be scored twice"


# ---------------------------------------------------------------------------------------------------- CSV


def test_csv_text_is_one_format_for_people():
    import pandas as pd

    from generalization.files import CSV_FLOAT_FORMAT, csv_text

    df = pd.DataFrame({"model": ["=cmd|' /C calc'!A0", "-1.5", "ok"], "n": [50000, 10000, 2000],
                       "x": [1 / 3, 3e-5, 1234567.0]})
    # expected text written out by hand: 10 significant digits, counts exact, "\n" line ends, no index
    assert CSV_FLOAT_FORMAT == "%.10g"
    assert csv_text(df) == ("model,n,x\n"
                            "'=cmd|' /C calc'!A0,50000,0.3333333333\n"
                            "-1.5,10000,3e-05\n"
                            "ok,2000,1234567\n")


def _to_csv_calls(source: str) -> list[int]:
    """Line numbers of ``<anything>.to_csv(...)`` calls in ``source``."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to_csv"]


#: the modules that may call ``to_csv`` themselves: files.py (it is csv_text), and the store's bulk accuracy tables,
#: a checksummed data file the store reads back (full precision, model names verbatim), not a CSV for people
_TO_CSV_ALLOWED = {"generalization/files.py", "generalization/store/tables.py"}


def test_every_csv_the_package_writes_goes_through_csv_text():
    root = Path(__file__).resolve().parents[1]
    assert _to_csv_calls("import pandas as pd\npd.DataFrame().to_csv('x.csv', float_format='%.4f')\n") == [2]
    offenders = []
    for path in sorted((root / "generalization").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel not in _TO_CSV_ALLOWED:
            offenders += [f"{rel}:{line}" for line in _to_csv_calls(path.read_text(encoding="utf-8"))]
    assert offenders == [], "write CSV with files.csv_text (one format, formulas neutralised): " + ", ".join(offenders)
