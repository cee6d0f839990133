"""The prediction store: records, atomicity, no silent overwrite, two writers."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest

from generalization.files import DataError
from generalization.store.records import PredictionStore, RecordExistsError


def _store(tmp_path, n=100, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    s = PredictionStore(tmp_path / "store")
    labels = rng.integers(0, classes, n)
    s.put_labels("cifar10.1-v6", labels, num_classes=classes)
    return s, labels, rng


def test_counts_against_numpy(tmp_path):
    s, labels, rng = _store(tmp_path)
    pred = rng.integers(0, 10, (100, 5))
    rec = s.put(source="evaluate", model="timm/resnet50", test_set="cifar10.1-v6", predictions=pred)
    assert rec.top1_correct == int(np.sum(pred[:, 0] == labels))
    assert rec.top5_correct == int(np.sum((pred == labels[:, None]).any(axis=1)))
    np.testing.assert_array_equal(s.predictions("evaluate", "timm/resnet50", "cifar10.1-v6"), pred)
    # the model name with a slash is kept as the record's name and is safe on disk
    row = s.accuracy_table().iloc[0]
    assert row["model"] == "timm/resnet50" and row["n"] == 100


def test_top1_only_and_accuracy_only(tmp_path):
    s, labels, rng = _store(tmp_path)
    pred = rng.integers(0, 10, 100)
    s.put(source="r", model="a", test_set="cifar10.1-v6", predictions=pred)
    s.put(source="published", model="b", test_set="cifar10.1-v6", n=2000, top1_correct=1800, top5_correct=None)
    t = s.accuracy_table().set_index("model")
    assert t.loc["a", "top1_correct"] == np.sum(pred == labels) and t.loc["a", "top5_correct"] is __import__("pandas").NA
    assert t.loc["b", "top1"] == 90.0 and np.isnan(t.loc["b", "top5"])


def test_no_silent_overwrite(tmp_path):
    s, labels, rng = _store(tmp_path)
    a, b = rng.integers(0, 10, (100, 5)), rng.integers(0, 10, (100, 5))
    s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=a)
    s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=a)  # identical: fine
    with pytest.raises(RecordExistsError, match="a different record"):
        s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=b)
    np.testing.assert_array_equal(s.predictions("e", "m", "cifar10.1-v6"), a)
    s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=b, overwrite=True)
    np.testing.assert_array_equal(s.predictions("e", "m", "cifar10.1-v6"), b)
    # the old predictions file is gone, one file per record remains
    assert len(list((tmp_path / "store" / "records").rglob("*.npy"))) == 1


def test_bad_inputs(tmp_path):
    s, labels, rng = _store(tmp_path)
    with pytest.raises(DataError, match="99 rows, the test set has 100"):
        s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=np.zeros((99, 5), int))
    with pytest.raises(DataError, match="outside 0..9"):
        s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=np.full((100, 5), 10))
    with pytest.raises(DataError, match="no labels for imagenet-val"):
        s.put(source="e", model="m", test_set="imagenet-val", predictions=np.zeros((5, 5), int))
    with pytest.raises(DataError, match="different labels"):
        s.put_labels("cifar10.1-v6", (labels + 1) % 10, num_classes=10)


def test_interrupted_write_keeps_previous_record(tmp_path, monkeypatch):
    s, labels, rng = _store(tmp_path)
    a = rng.integers(0, 10, (100, 5))
    s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=a)
    import generalization.store.records as store_mod

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        s.put(source="e", model="m", test_set="cifar10.1-v6", predictions=(a + 1) % 10, overwrite=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(s.predictions("e", "m", "cifar10.1-v6"), a)
    assert not list((tmp_path / "store").rglob("*.tmp"))


def _writer(root, seed, barrier):
    s = PredictionStore(root)
    rng = np.random.default_rng(seed)
    barrier.wait()
    for i in range(30):
        pred = rng.integers(0, 10, (100, 5))
        s.put(source="e", model=f"m{i % 5}", test_set="cifar10.1-v6", predictions=pred, overwrite=True,
              meta={"writer": seed})  # fmt: skip


def test_two_writers_never_corrupt(tmp_path):
    s, labels, _ = _store(tmp_path)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(s.root), seed, barrier)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    recs = s.records()
    assert len(recs) == 5
    for r in recs:
        pred = s.predictions("e", r.model, "cifar10.1-v6")  # verifies the content hash
        assert r.top1_correct == int(np.sum(pred[:, 0] == labels))
    assert len(list((s.root / "records").rglob("*.npy"))) == 5
    assert not [p for p in s.root.rglob("*") if p.name.endswith(".tmp")]


def test_store_marker_checked(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "store.json").write_text('{"format": "something-else"}')
    s = PredictionStore(root)
    with pytest.raises(DataError, match="not a generalization store"):
        s.put_labels("cifar10.1-v6", np.zeros(3, int), num_classes=10)
    assert os.listdir(root) == ["store.json"]
