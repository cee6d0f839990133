"""Importers on the real releases in ../shared/data, checked against numpy on the raw files."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from generalization.files import DataError
from generalization.store import importers
from generalization.store.records import PredictionStore

DATASETS = {
    "imagenet-validation-original": "imagenet-val",
    "imagenetv2-b-33": "imagenetv2-matched-frequency",
    "imagenetv2-a-44": "imagenetv2-threshold0.7",
    "imagenetv2-c-12": "imagenetv2-top-images",
}


@pytest.fixture(scope="module")
def imported(imagenetv2_release, cifar101_release, cifar10_labels_npy, tmp_path_factory) -> PredictionStore:
    store = PredictionStore(tmp_path_factory.mktemp("store"))
    importers.import_imagenetv2(imagenetv2_release, store)
    importers.import_cifar101(cifar101_release, store, cifar10_labels=cifar10_labels_npy)
    return store


def test_all_imagenet_rows_exact(imported, imagenetv2_release):
    table = imported.accuracy_table().set_index(["source", "model", "test_set"])
    root = imagenetv2_release / "data"
    wnids = sorted(c["wnid"] for c in json.loads((root / "metadata" / "class_info.json").read_text()))
    count = 0
    for dataset, test_set in DATASETS.items():
        entries = json.loads((root / "datasets" / f"{dataset}.json").read_text())["image_filenames"]
        labels = np.array([wnids.index(w) for _, w in entries])
        for f in sorted((root / "predictions" / dataset).glob("*.npy")):
            pred = np.load(f, allow_pickle=False).astype(np.int64)
            model = f.stem[: -len("_model")] if f.stem.endswith("_model") else f.stem
            if model == "fv_16k" and test_set != "imagenet-val":
                pred = pred[:, ::-1]  # released in ascending rank order; the importer repairs it
            row = table.loc[("imagenetv2-release", model, test_set)]
            assert row["n"] == len(labels)
            assert row["top1_correct"] == np.sum(pred[:, 0] == labels)
            assert row["top5_correct"] == np.sum(np.any(pred == labels[:, None], axis=1))
            count += 1
    assert count == 67 * 4
    assert len(table.xs("imagenetv2-release", level="source")) == 67 * 4


def test_published_reference_numbers(imported):
    t = imported.accuracy_table().set_index(["model", "test_set"])
    assert round(t.loc[("resnet152", "imagenet-val"), "top1"], 2) == 78.31
    assert round(t.loc[("resnet152", "imagenetv2-matched-frequency"), "top1"], 2) == 67.02
    assert round(t.loc[("shake_shake_26_2x64d_SSI_cutout16", "cifar10-test"), "top1"], 2) == 97.11
    assert round(t.loc[("resnet_basic_110", "cifar10-test"), "top1"], 2) == 93.46
    assert round(t.loc[("vgg16_keras", "cifar10-test"), "top1"], 2) == 93.59


def test_fisher_vector_name_drift_and_repair(imported):
    t = imported.accuracy_table()
    fv = t[t["model"].str.startswith("fv_")]
    # fv_64k_model (threshold0.7) and fv_16k_model (top-images) are reconciled to one name per model
    assert sorted(set(fv["model"])) == ["fv_16k", "fv_4k", "fv_64k"]
    assert len(fv) == 12
    # fv_16k's new-set arrays hold the top-5 in ascending rank order: repaired, recorded, nothing flagged
    assert (t["flag"] == "").all()
    repaired = t[t["repair"] != ""]
    assert sorted(repaired["test_set"]) == ["imagenetv2-matched-frequency", "imagenetv2-threshold0.7", "imagenetv2-top-images"]
    assert set(repaired["model"]) == {"fv_16k"}
    assert repaired["repair"].str.contains("ranks reversed").all()
    rec = imported.get("imagenetv2-release", "fv_16k", "imagenetv2-matched-frequency")
    assert rec.meta["released_top1_correct"] == 247 and rec.top1_correct == 1924


def test_paper_mean_changes_over_all_67_models(imported):
    """The paper: mean change from ImageNet over the 67 models, top-1 -11.8 / -3.2 / +2.1, top-5 -8.2 / -1.2 / +1.8."""
    t = imported.accuracy_table()
    t = t[t["source"] == "imagenetv2-release"].set_index(["model", "test_set"])
    models = sorted(set(t.index.get_level_values("model")))
    assert len(models) == 67
    paper = {"imagenetv2-matched-frequency": (-11.8, -8.2), "imagenetv2-threshold0.7": (-3.2, -1.2),
             "imagenetv2-top-images": (2.1, 1.8)}  # fmt: skip
    for new, (d1, d5) in paper.items():
        for col, want in (("top1", d1), ("top5", d5)):
            got = np.mean([float(t.loc[(m, new), col]) - float(t.loc[(m, "imagenet-val"), col]) for m in models])
            assert got == pytest.approx(want, abs=0.1), (new, col)


def test_repair_can_be_turned_off(imagenetv2_release, tmp_path):
    store = PredictionStore(tmp_path / "s")
    report = importers.import_imagenetv2(imagenetv2_release, store, repair=False)
    t = store.accuracy_table()
    flagged = t[t["flag"] != ""]
    assert set(flagged["model"]) == {"fv_16k"} and len(flagged) == 3 and (flagged["top1"] < 5).all()
    assert (t["repair"] == "").all()
    assert sum("not repaired" in n for n in report.notes) == 3
    raw = np.load(imagenetv2_release / "data/predictions/imagenetv2-b-33/fv_16k.npy", allow_pickle=False)
    np.testing.assert_array_equal(store.predictions("imagenetv2-release", "fv_16k", "imagenetv2-matched-frequency"), raw)


def test_rank_order_defect_from_the_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, 10_000)
    pred = rng.integers(0, 1000, (10_000, 5))
    for k, share in enumerate([0.6, 0.1, 0.05, 0.03, 0.02]):  # a real classifier: hits fall with the rank
        hit = rng.random(10_000) < share
        pred[hit, k] = labels[hit]
    assert importers.rank_order_defect(pred, labels) == (None, "")
    perm, what = importers.rank_order_defect(pred[:, ::-1], labels)
    assert list(perm) == [4, 3, 2, 1, 0] and "ranks reversed" in what
    perm, what = importers.rank_order_defect(pred[:, [1, 0, 2, 3, 4]], labels)
    assert list(perm) == [1, 0, 2, 3, 4] and "reversed" not in what
    tied = pred.copy()
    tied[:, 1:] = rng.integers(0, 1000, (10_000, 4))
    tied[:, 2] = np.where(rng.random(10_000) < 0.6, labels, tied[:, 2])
    tied[:, 3] = np.where(rng.random(10_000) < 0.6, labels, tied[:, 3])  # two columns alike: order unknowable
    perm, what = importers.rank_order_defect(tied[:, [4, 1, 2, 3, 0]], labels)
    assert perm is None and "cannot be recovered" in what


def test_all_cifar_rows_exact(imported, cifar101_release, cifar10_labels_npy):
    t = imported.accuracy_table().set_index(["model", "test_set"])
    labels = {
        "cifar10-test": np.load(cifar10_labels_npy),
        "cifar10.1-v4": np.load(cifar101_release / "datasets" / "cifar10.1_v4_labels.npy"),
        "cifar10.1-v6": np.load(cifar101_release / "datasets" / "cifar10.1_v6_labels.npy"),
    }
    folders = {"cifar10-test": "original", "cifar10.1-v4": "v4", "cifar10.1-v6": "v6"}
    count = 0
    for test_set, folder in folders.items():
        for f in sorted((cifar101_release / "model_predictions" / f"{folder}_predictions").glob("*.json")):
            pred = np.array(json.loads(f.read_text()))
            row = t.loc[(f.name.replace("_predictions.json", ""), test_set)]
            assert row["top1_correct"] == np.sum(pred == labels[test_set])
            assert row["n"] == len(labels[test_set])
            assert np.isnan(row["top5"])
            count += 1
    assert count == 90


def test_stored_predictions_round_trip(imported, imagenetv2_release):
    raw = np.load(imagenetv2_release / "data/predictions/imagenetv2-c-12/fv_64k.npy", allow_pickle=False)
    np.testing.assert_array_equal(imported.predictions("imagenetv2-release", "fv_64k", "imagenetv2-top-images"), raw)
    raw = np.load(imagenetv2_release / "data/predictions/imagenetv2-c-12/fv_16k_model.npy", allow_pickle=False)
    got = imported.predictions("imagenetv2-release", "fv_16k", "imagenetv2-top-images")
    np.testing.assert_array_equal(got, raw[:, ::-1])  # repaired: the same top-5, in rank order


def test_reimport_is_idempotent(imported, cifar101_release, cifar10_labels_npy):
    report = importers.import_cifar101(cifar101_release, imported, cifar10_labels=cifar10_labels_npy)
    assert report.written == 0 and report.unchanged == 90


def test_cifar10_labels_from_official_test_batch(cifar101_release, cifar10_labels_npy, tmp_path):
    labels = np.load(cifar10_labels_npy)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in labels],
        b"data": np.zeros((10000, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(10000)],
    }
    (tmp_path / "cifar-10-batches-py").mkdir()
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    np.testing.assert_array_equal(importers.read_cifar10_test_labels(cifar10_root=tmp_path), labels)


class _Evil:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-generalization-test",))


def test_hostile_pickle_is_refused(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"labels": _Evil()}))
    with pytest.raises(DataError, match="refused to unpickle.*shutil.rmtree"):
        importers.read_cifar10_test_labels(cifar10_root=tmp_path)


# ------------------------------------------------------------------------------------------ error paths


def _small_release(src: Path, dst: Path, models=("alexnet", "resnet152")) -> Path:
    """A copy of the release with two models per dataset (fast to import, free to damage)."""
    (dst / "data" / "metadata").mkdir(parents=True)
    shutil.copy(src / "data/metadata/class_info.json", dst / "data/metadata/class_info.json")
    shutil.copytree(src / "data/datasets", dst / "data/datasets")
    for d in DATASETS:
        (dst / "data/predictions" / d).mkdir(parents=True)
        for m in models:
            shutil.copy(src / "data/predictions" / d / f"{m}.npy", dst / "data/predictions" / d / f"{m}.npy")
    return dst


def test_int64_and_int16_give_the_same_rows(imagenetv2_release, tmp_path):
    rel = _small_release(imagenetv2_release, tmp_path / "rel")
    for f in (rel / "data/predictions").rglob("*.npy"):
        np.save(f, np.load(f).astype(np.int64))
    a = PredictionStore(tmp_path / "a")
    importers.import_imagenetv2(rel, a)
    b = PredictionStore(tmp_path / "b")
    importers.import_imagenetv2(_small_release(imagenetv2_release, tmp_path / "rel16"), b)
    cols = ["model", "test_set", "top1_correct", "top5_correct"]
    assert a.accuracy_table()[cols].equals(b.accuracy_table()[cols])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: f.write_bytes(f.read_bytes()[:1000]), "not a valid or complete .npy"),
        (lambda f: np.save(f, np.array([[object()]] * 5, dtype=object), allow_pickle=True), "object array"),
        (lambda f: np.save(f, np.load(f)[:-1]), "rows, but imagenetv2-b-33.json lists 10000"),
        (lambda f: np.save(f, np.load(f)[:, :3]), r"expected shape \(N, 5\)"),
        (lambda f: np.save(f, np.load(f).astype(np.float32)), "expected integer class indices"),
        (lambda f: np.save(f, np.load(f) + 1), r"class indices outside 0..999"),
    ],
)
def test_bad_prediction_files_are_named(imagenetv2_release, tmp_path, damage, message):
    rel = _small_release(imagenetv2_release, tmp_path / "rel")
    victim = rel / "data/predictions/imagenetv2-b-33/resnet152.npy"
    damage(victim)
    with pytest.raises(DataError, match=message) as e:
        importers.import_imagenetv2(rel, tmp_path / "store")
    assert "resnet152.npy" in str(e.value)


def test_unknown_wnid(imagenetv2_release, tmp_path):
    rel = _small_release(imagenetv2_release, tmp_path / "rel")
    path = rel / "data/datasets/imagenetv2-a-44.json"
    d = json.loads(path.read_text())
    d["image_filenames"][5][1] = "n99999999"
    path.write_text(json.dumps(d))
    with pytest.raises(DataError, match="imagenetv2-a-44.json: unknown wnid 'n99999999'"):
        importers.import_imagenetv2(rel, tmp_path / "store")


def test_missing_release_folder(tmp_path):
    with pytest.raises(DataError, match="ImageNetV2 release not found"):
        importers.import_imagenetv2(tmp_path / "nope", tmp_path / "store")
    with pytest.raises(DataError, match="CIFAR-10.1 release not found"):
        importers.import_cifar101(tmp_path / "nope", tmp_path / "store", cifar10_labels=tmp_path / "x.npy")


def test_wrong_cifar_prediction_count(cifar101_release, cifar10_labels_npy, tmp_path):
    rel = tmp_path / "c"
    shutil.copytree(cifar101_release / "datasets", rel / "datasets")
    for v in ("original", "v4", "v6"):
        shutil.copytree(cifar101_release / "model_predictions" / f"{v}_predictions", rel / "model_predictions" / f"{v}_predictions")
    bad = rel / "model_predictions/v6_predictions/darc_predictions.json"
    bad.write_text(json.dumps(json.loads(bad.read_text())[:-3]))
    with pytest.raises(DataError, match="darc_predictions.json: 1997 predictions, the test set has 2000"):
        importers.import_cifar101(rel, tmp_path / "store", cifar10_labels=cifar10_labels_npy)


# ------------------------------------------------------------------------------------- published tables


def test_timm_and_testbed_excerpts(shared_data, tmp_path):
    import pandas as pd

    d = shared_data / "published-results-samples"
    store = PredictionStore(tmp_path / "s")
    importers.import_timm(d / "results-imagenet.csv", d / "results-imagenetv2-matched-frequency.csv", store)
    importers.import_testbed(d / "robustness_top1s.csv", store)
    t = store.accuracy_table()

    raw = pd.read_csv(d / "results-imagenet.csv")
    timm = t[(t["source"] == "timm") & (t["test_set"] == "imagenet-val")]
    assert len(timm) == len(raw)
    key = raw["model"] + "@" + raw["img_size"].astype(str)
    got = timm.set_index("model").loc[key]
    np.testing.assert_allclose(got["top1"].to_numpy(), raw["top1"].to_numpy(), atol=0.001)
    np.testing.assert_allclose(got["top5"].to_numpy(), raw["top5"].to_numpy(), atol=0.001)

    wide = pd.read_csv(d / "robustness_top1s.csv")
    tb = t[t["source"] == "testbed"].set_index(["model", "test_set"])
    for col, test_set in importers.TESTBED_COLUMNS.items():
        vals = wide[["model", col]].dropna()
        assert len(tb.xs(test_set, level="test_set")) == len(vals)
        np.testing.assert_allclose(tb.loc[list(zip(vals["model"], [test_set] * len(vals), strict=True)), "top1"],
                                   vals[col], atol=0.01)  # fmt: skip


def test_testbed_table_of_another_size(tmp_path):
    """Nothing assumes the excerpt's rows: a table with other models and empty cells imports."""
    csv = tmp_path / "robustness_top1s.csv"
    csv.write_text("model,val,imagenetv2-matched-frequency-format-val,other\nm1,76.13,,1\nm2,,63.2,2\nm3,50.0,40.0,\n")
    store = PredictionStore(tmp_path / "s")
    report = importers.import_testbed(csv, store)
    assert report.written == 4
    t = store.accuracy_table()
    assert sorted(zip(t["model"], t["test_set"], t["top1_correct"], strict=True)) == [
        ("m1", "imagenet-val", 38065), ("m2", "imagenetv2-matched-frequency", 6320),
        ("m3", "imagenet-val", 25000), ("m3", "imagenetv2-matched-frequency", 4000),
    ]  # fmt: skip


def test_timm_missing_column(tmp_path):
    csv = tmp_path / "results-imagenet.csv"
    csv.write_text("model,top1\nx,1\n")
    with pytest.raises(DataError, match="results-imagenet.csv: missing column.*img_size"):
        importers.import_timm(csv, None, tmp_path / "s")
