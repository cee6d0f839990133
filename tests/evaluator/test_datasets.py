"""Test-set registry and loaders, on real data from ../shared/data laid out in temp folders."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generalization import test_sets
from generalization.evaluator import datasets, image_sets
from generalization.evaluator.datasets import (
    CountMismatchWarning,
    imagenet_wnids,
    load_dataset,
    verify_data,
)
from generalization.evaluator.decode import BadImageError, Preprocess, decode_file, decode_pil_reference
from generalization.files import DataError

PROJECT = Path(__file__).resolve().parents[2]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def sample_photos(shared_data) -> list[Path]:
    files = sorted((shared_data / "imagenet-sample").glob("*.JPEG"))
    assert len(files) == 1000
    return files


def _layout(files: list[Path], root: Path, by_index: bool) -> Path:
    """The sample photos as <class index>/<file> (the ImageNetV2 archive layout) or <wnid>/<file> (symlinks)."""
    index = {w: i for i, w in enumerate(sorted({f.name.split("_")[0] for f in files}))}
    for f in files:
        wnid = f.name.split("_")[0]
        d = root / (str(index[wnid]) if by_index else wnid)
        d.mkdir(parents=True, exist_ok=True)
        (d / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="session")
def index_layout(sample_photos, tmp_path_factory) -> Path:
    return _layout(sample_photos, tmp_path_factory.mktemp("index"), by_index=True)


@pytest.fixture(scope="session")
def wnid_layout(sample_photos, tmp_path_factory) -> Path:
    return _layout(sample_photos, tmp_path_factory.mktemp("wnid"), by_index=False)


def _load_quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CountMismatchWarning)
        return load_dataset(*args, **kw)


# ---------------------------------------------------------------------------------------------- CIFAR


def test_cifar10_official_format_first1000(cifar_1000, shared_data):
    with pytest.warns(CountMismatchWarning, match="1,000 images"):
        ds = load_dataset("cifar10-test", cifar_1000)
    # independent check: md5 of the pixels in the official layout, published in ../shared/README.md
    rows = ds.pixels.transpose(0, 3, 1, 2).reshape(1000, 3072)
    assert hashlib.md5(rows.tobytes()).hexdigest() == "08fcd6e0cc2f0a0ce079fe06bc46a255"
    expected = np.load(shared_data / "cifar10-test-first1000" / "test_labels_first1000.npy")
    np.testing.assert_array_equal(ds.labels, expected)
    assert ds.flags == ["partial test set: 1000 of 10000 images"]
    with pytest.raises(DataError, match="1,000 images, the published cifar10-test has 10,000"):
        load_dataset("cifar10-test", cifar_1000, strict_count=True)


def test_cifar10_mixed_10000_official_order(cifar_10000, shared_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountMismatchWarning)
        ds = load_dataset("cifar10-test", cifar_10000)
    labels = np.load(shared_data / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy")
    np.testing.assert_array_equal(ds.labels, labels)
    first = np.load(shared_data / "cifar10-test-first1000" / "test_data_first1000.npy")
    np.testing.assert_array_equal(ds.pixels[:1000], first)
    # rows after 1,000: the k-th image of class c in official order is test/<c>/<k:04d>.jpg
    rng = np.random.default_rng(0)
    for r in rng.choice(np.arange(1000, 10_000), size=20, replace=False):
        c = labels[r]
        k = int((labels[:r] == c).sum())
        jpg = shared_data / "cifar10-test-jpeg75" / "test" / CIFAR_CLASSES[c] / f"{k:04d}.jpg"
        np.testing.assert_array_equal(ds.pixels[r], np.asarray(Image.open(jpg).convert("RGB")))


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch HACKED",))


def test_hostile_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({b"data": _Boom(), b"labels": [0]}))
    with pytest.raises(DataError, match=r"test_batch: refused to unpickle.*posix.system|test_batch: refused"):
        load_dataset("cifar10-test", tmp_path)
    assert not (tmp_path / "HACKED").exists()


def test_cifar10_batch_structure_errors(tmp_path):
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DataError, match=r"N x 3072 uint8"):
        load_dataset("cifar10-test", tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_dataset("cifar10-test", tmp_path / "nowhere")


def test_cifar101_npy_and_wrong_version(cifar101_release, tmp_path):
    for v, n in (("v4", 2021), ("v6", 2000)):
        labels = np.load(cifar101_release / "datasets" / f"cifar10.1_{v}_labels.npy")
        assert len(labels) == n
        np.save(tmp_path / f"cifar10.1_{v}_labels.npy", labels)
        np.save(tmp_path / f"cifar10.1_{v}_data.npy", np.zeros((n, 32, 32, 3), np.uint8))
    ds = load_dataset("cifar10.1-v6", tmp_path)
    assert len(ds) == 2000 and ds.pixels.shape == (2000, 32, 32, 3) and ds.flags == []
    np.testing.assert_array_equal(
        ds.labels, np.load(cifar101_release / "datasets" / "cifar10.1_v6_labels.npy")
    )
    assert verify_data("cifar10.1-v4", tmp_path).ok
    # v6 files under the v4 names: a wrong version, said as such
    other = tmp_path / "swapped"
    other.mkdir()
    np.save(other / "cifar10.1_v4_data.npy", np.zeros((2000, 32, 32, 3), np.uint8))
    np.save(other / "cifar10.1_v4_labels.npy", np.load(tmp_path / "cifar10.1_v6_labels.npy"))
    with pytest.raises(DataError, match="CIFAR-10.1 v6, not v4 .wrong version"):
        load_dataset("cifar10.1-v4", other)
    np.save(other / "cifar10.1_v4_data.npy", np.zeros((2000, 32, 32), np.uint8))
    with pytest.raises(DataError, match="N x 32 x 32 x 3 uint8"):
        load_dataset("cifar10.1-v4", other)


def test_verify_data_cifar10_names_the_difference(cifar_1000):
    report = verify_data("cifar10-test", cifar_1000)
    assert not report.ok
    text = report.summary()
    assert "1,000 images, the published set has 10,000" in text
    assert "40351d587109b95175f43aff81a1287e" in text  # the official md5 it was compared with


# ------------------------------------------------------------------------------------------- ImageNet


def test_imagenet_wnids_are_the_release_classes(imagenetv2_release):
    info = json.loads((imagenetv2_release / "data" / "metadata" / "class_info.json").read_text())
    assert list(imagenet_wnids()) == [c["wnid"] for c in sorted(info, key=lambda c: c["cid"])]


def test_archive_and_wnid_layouts_agree(index_layout, wnid_layout, sample_photos):
    a = _load_quiet("imagenetv2-matched-frequency", index_layout)
    b = _load_quiet("imagenetv2-matched-frequency", wnid_layout)
    assert (a.layout, b.layout) == ("index-folders", "wnid-folders")
    wnids = sorted({f.name.split("_")[0] for f in sample_photos})
    # independent: folder "i" holds the photo of the i-th sorted wnid, so the label is int(folder name)
    np.testing.assert_array_equal(a.labels, [int(p.parent.name) for p in a.paths])
    np.testing.assert_array_equal(a.labels, [wnids.index(p.name.split("_")[0]) for p in a.paths])
    np.testing.assert_array_equal(a.labels, b.labels)
    assert [p.name for p in a.paths] == [p.name for p in b.paths]
    assert a.flags == ["partial test set: 1000 of 10000 images"]


def _release_json(files: list[Path], path: Path, seed: int = 0) -> Path:
    entries = [[f.stem, f.name.split("_")[0]] for f in files]
    random.Random(seed).shuffle(entries)
    path.write_text(json.dumps({"image_filenames": entries}))
    return path


def test_release_json_fixes_order_and_ids(index_layout, sample_photos, tmp_path):
    rel = _release_json(sample_photos, tmp_path / "release.json")
    ds = _load_quiet("imagenetv2-top-images", index_layout, release=rel)
    entries = json.loads(rel.read_text())["image_filenames"]
    assert ds.image_ids == [i for i, _ in entries]
    assert [p.stem for p in ds.paths] == [i for i, _ in entries]
    wnids = imagenet_wnids()
    np.testing.assert_array_equal(ds.labels, [wnids.index(w) for _, w in entries])


def test_string_sorted_loader_is_caught(index_layout, sample_photos, tmp_path, monkeypatch):
    """A loader that numbers the archive's folders in string order ("0", "1", "10", "100", ...) scrambles
    the classes; against the release JSON that is an error naming the misplaced images."""
    rel = _release_json(sample_photos, tmp_path / "release.json")
    string_order = {name: i for i, name in enumerate(sorted(str(i) for i in range(1000)))}
    assert string_order["10"] == 2  # the scramble: folder "10" would become class 2
    monkeypatch.setattr(image_sets, "index_folder_class", lambda name: string_order[name])
    with pytest.raises(DataError, match=r"in the wrong class folder.*string sort"):
        _load_quiet("imagenetv2-matched-frequency", index_layout, release=rel)
    report = verify_data("imagenetv2-matched-frequency", index_layout, release=rel)
    assert not report.ok and "wrong class folder" in report.summary()
    # without a JSON, the scrambled labels disagree with the wnid truth for nearly every image
    scrambled = _load_quiet("imagenetv2-matched-frequency", index_layout)
    truth = [
        sorted({f.name.split("_")[0] for f in sample_photos}).index(p.name.split("_")[0])
        for p in scrambled.paths
    ]
    assert (scrambled.labels != np.asarray(truth)).mean() > 0.95


def test_missing_class_folder_and_count_mismatch(index_layout, tmp_path, sample_photos):
    root = tmp_path / "v2"
    root.mkdir()
    for d in index_layout.iterdir():
        if d.name != "517":
            (root / d.name).symlink_to(d, target_is_directory=True)
    with pytest.raises(DataError, match=r"1 class folder\(s\) missing \(e.g. \['517'\]\)"):
        load_dataset("imagenetv2-threshold0.7", root)
    # a stray folder that is not a class
    (root / "517").mkdir()
    (root / "1000").mkdir()
    with pytest.raises(DataError, match=r"unknown class folder.*'1000'"):
        load_dataset("imagenetv2-threshold0.7", root)
    (root / "1000").rmdir()
    # count mismatch: warned and flagged, an error with strict_count, and named by verify-data
    with pytest.warns(
        CountMismatchWarning, match="999 images, the published imagenetv2-threshold0.7 has 10,000"
    ):
        ds = load_dataset("imagenetv2-threshold0.7", root)
    assert len(ds) == 999 and ds.flags == ["partial test set: 999 of 10000 images"]
    with pytest.raises(DataError, match="999 images"):
        load_dataset("imagenetv2-threshold0.7", root, strict_count=True)
    # against a release JSON that lists the photo of class 517, the missing file is named
    rel = _release_json(sample_photos, tmp_path / "release.json")
    wnid517 = sorted({f.name.split("_")[0] for f in sample_photos})[517]
    stem = next(f.stem for f in sample_photos if f.name.startswith(wnid517))
    with pytest.raises(DataError, match=re.escape(f"1 listed image(s) missing (e.g. ['{stem}'])")):
        load_dataset("imagenetv2-threshold0.7", root, release=rel)


def test_imagenet_val_flat_layout_with_release_order(sample_photos, tmp_path, imagenetv2_release):
    """Flat ILSVRC2012_val_*.JPEG files take the release JSON's order, ids and labels."""
    entries = json.loads(
        (imagenetv2_release / "data" / "datasets" / "imagenet-validation-original.json").read_text()
    )["image_filenames"]
    take = entries[::500]  # 100 entries, in the release's (class-grouped) order
    root = tmp_path / "val"
    root.mkdir()
    for (image_id, _), photo in zip(take, sample_photos[: len(take)], strict=True):
        (root / image_id).symlink_to(photo)
    rel = tmp_path / "subset.json"
    rel.write_text(json.dumps({"image_filenames": take}))
    ds = _load_quiet("imagenet-val", tmp_path, release=rel)
    assert ds.layout == "flat" and ds.image_ids == [i for i, _ in take]
    np.testing.assert_array_equal(ds.labels, [imagenet_wnids().index(w) for _, w in take])
    with pytest.raises(DataError, match="needs labels"):
        _load_quiet("imagenet-val", tmp_path)


def test_manifest_folder(sample_photos, tmp_path):
    """Any folder plus a manifest in the release/sampler format works the same way."""
    root = tmp_path / "mine"
    root.mkdir()
    chosen = sample_photos[:30]
    for f in chosen:
        (root / f.name.replace(".JPEG", ".jpeg")).symlink_to(f)
    entries = [[f.stem, f.name.split("_")[0]] for f in reversed(chosen)]
    man = tmp_path / "my-new-set.json"
    man.write_text(json.dumps({"image_filenames": entries}))
    ds = load_dataset(str(man), root)
    assert ds.name == "my-new-set" and ds.num_classes == 1000 and ds.layout == "manifest"
    assert [p.stem for p in ds.paths] == [i for i, _ in entries]
    np.testing.assert_array_equal(ds.labels, [imagenet_wnids().index(w) for _, w in entries])
    (root / chosen[0].name.replace(".JPEG", ".jpeg")).unlink()
    with pytest.raises(DataError, match=r"1 listed image\(s\) missing"):
        load_dataset(str(man), root)


def test_data_manifests_are_generated_from_the_registry():
    """data_manifests/ is the output of `list-datasets --write-manifests`, byte for byte: a hand edit fails."""
    files = sorted((PROJECT / "data_manifests").glob("*.json"))
    assert [f.stem for f in files] == sorted(datasets.DATASETS)
    regenerate = "run: python -m generalization list-datasets --write-manifests data_manifests"
    for f in files:
        assert f.read_bytes() == datasets.manifest_text(f.stem).encode(), f"{f} differs from the registry; {regenerate}"
    # what a manifest says is what the catalog and the loader spec say (read independently of manifest())
    mf = json.loads((PROJECT / "data_manifests" / "imagenetv2-matched-frequency.json").read_text())
    info = test_sets.CATALOG["imagenetv2-matched-frequency"]
    assert (mf["title"], mf["num_classes"], mf["expected_count"]) == (info.title, 1000, 10_000)
    assert mf["release_json"] == "ImageNetV2 release: data/datasets/imagenetv2-b-33.json"
    assert json.loads((PROJECT / "data_manifests" / "cifar10.1-v4.json").read_text())["expected_count"] == 2021


def test_write_manifests(tmp_path, capsys):
    from generalization.cli import main

    (tmp_path / "old-set.json").write_text("{}")
    assert main(["list-datasets", "--write-manifests", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(datasets.DATASETS)} manifest(s) written, 0 unchanged" in out and "old-set.json" in out
    for name in datasets.DATASETS:
        assert (tmp_path / f"{name}.json").read_bytes() == (PROJECT / "data_manifests" / f"{name}.json").read_bytes()
    (tmp_path / "cifar10-test.json").write_text('{"title": "edited by hand"}\n')
    written, stale = datasets.write_manifests(tmp_path)
    assert written == [tmp_path / "cifar10-test.json"] and stale == [tmp_path / "old-set.json"]
    assert json.loads((tmp_path / "cifar10-test.json").read_text())["title"] == "CIFAR-10 test"


def test_loader_specs_read_identity_from_the_catalog():
    """A spec has no title/count/classes of its own: they are its catalog entry's, so they cannot diverge."""
    names = {f.name for f in dataclasses.fields(datasets.DatasetSpec)}
    assert not names & {"title", "num_classes", "expected_count", "classes", "release_json"}
    for name, spec in datasets.DATASETS.items():
        info = test_sets.CATALOG[name]
        assert (spec.title, spec.num_classes, spec.expected_count) == (info.title, info.num_classes, info.num_images)
    assert datasets.DATASETS["imagenet-val"].release_json == "imagenet-validation-original.json"
    assert datasets.DATASETS["imagenetv2-top-images"].release_json == "imagenetv2-c-12.json"
    assert datasets.DATASETS["imagenet-a"].release_json is None
    assert datasets.DATASETS["cifar10.1-v6"].classes == "cifar10" and datasets.DATASETS["imagenet-r"].classes == "imagenet-1k"


# ------------------------------------------------------------------------------------------- decoding

PRE = Preprocess(224, 256, "bilinear")


def test_real_grayscale_jpegs_decode_to_rgb(sample_photos):
    gray = [f for f in sample_photos if Image.open(f).mode == "L"]
    assert len(gray) == 23
    for f in gray[:5]:
        x = decode_file(f, Preprocess(224, 256, "bilinear"))
        assert x.shape == (3, 224, 224) and x.dtype.is_floating_point is False
        assert bool((x[0] == x[1]).all() and (x[1] == x[2]).all())  # gray replicated into R, G, B


def test_cmyk_png_as_jpeg_and_truncated(sample_photos, tmp_path):
    src = Image.open(sample_photos[0])
    cmyk = tmp_path / "cmyk.JPEG"
    src.convert("CMYK").save(cmyk, "JPEG", quality=95)
    assert Image.open(cmyk).mode == "CMYK"
    ref = np.asarray(Image.open(cmyk).convert("RGB"))  # PIL's CMYK -> RGB, computed independently
    full = Preprocess(max(ref.shape[:2]), None)
    from generalization.evaluator.decode import decode_rgb, read_image_bytes

    got = decode_rgb(read_image_bytes(cmyk), cmyk).permute(1, 2, 0).numpy()
    assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 1
    png = tmp_path / "really_a_png.jpeg"
    buf = io.BytesIO()
    src.save(buf, "PNG")
    png.write_bytes(buf.getvalue())
    got = decode_rgb(read_image_bytes(png), png).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, np.asarray(src.convert("RGB")))  # PNG is lossless: exact
    trunc = tmp_path / "truncated.JPEG"
    data = sample_photos[1].read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match=r"truncated.JPEG: corrupt or truncated"):
        decode_file(trunc, PRE)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(BadImageError, match="junk.jpg"):
        decode_file(junk, PRE)
    del full


def test_torchvision_decode_close_to_pil(sample_photos):
    """torchvision.io + tensor resize vs the PIL pipeline of timm/torchvision presets: small pixel differences
    (resampling kernels differ slightly); their effect on accuracy is measured in docs/evaluator.md."""
    diffs = []
    for f in sample_photos[::100]:
        a = decode_file(f, PRE).numpy().astype(int)
        b = decode_pil_reference(f, PRE).numpy().astype(int)
        diffs.append(np.abs(a - b).mean())
    assert max(diffs) < 2.0
