"""Parquet export: the accuracy table and per-image predictions keyed by image id."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generalization.analysis import export
from generalization.store.records import PredictionStore
from generalization.store.tables import put_accuracy_rows


def test_parquet_accuracies_and_predictions(tmp_path):
    store = PredictionStore(tmp_path / "s")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, 300)
    ids = [f"img{i:04d}.jpeg" for i in range(300)]
    store.put_labels("imagenetv2-matched-frequency", labels, num_classes=1000, image_ids=ids)
    pred = rng.integers(0, 1000, (300, 5))
    pred[:120, 0] = labels[:120]  # 120 right at top-1
    pred[120:150, 3] = labels[120:150]  # 30 more within the top 5 (unless a duplicate sits in front)
    store.put(source="evaluate", model="m", test_set="imagenetv2-matched-frequency", predictions=pred)
    put_accuracy_rows(store, "timm", pd.DataFrame({"model": ["x@224"], "test_set": ["imagenet-a"], "n": [7500],
                                                   "top1_correct": [10], "model_type": ["standard"]}))  # fmt: skip
    table = store.accuracy_table()
    assert [p.name for p in export.write_exports(table, tmp_path / "o1", stores=[tmp_path / "s"])] == ["accuracies.parquet"]
    paths = export.write_exports(table, tmp_path / "out", stores=[tmp_path / "s"], predictions=True)
    assert [p.name for p in paths] == ["accuracies.parquet", "predictions.parquet"]

    acc = pd.read_parquet(paths[0])
    assert len(acc) == 2 and acc["top1_correct"].tolist() == table["top1_correct"].tolist()
    assert acc.set_index("model").loc["x@224", "model_type"] == "standard"
    assert pd.isna(acc.set_index("model").loc["x@224", "top5_correct"])

    pr = pd.read_parquet(paths[1]).set_index("image_id")
    assert len(pr) == 300 and pr.index.is_unique
    assert pr.loc["img0007.jpeg", "label"] == labels[7] and pr.loc["img0007.jpeg", "pred_1"] == labels[7]
    assert int(pr["correct_top1"].sum()) == int((pred[:, 0] == labels).sum())
    assert int(pr["correct_top5"].sum()) == int((pred == labels[:, None]).any(axis=1).sum())
    np.testing.assert_array_equal(pr[[f"pred_{i}" for i in range(1, 6)]].to_numpy(), pred)
