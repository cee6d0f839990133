"""Columnar export for pandas / DuckDB users and for publishing: Parquet beside the CSVs.

``accuracies.parquet``
    The accuracy table (one row per source, model, test set; counts, percentages, intervals, ``flag``,
    ``model_type``), typed (integers stay integers, a missing top-5 is null).
``predictions.parquet``
    Per-image predictions of every record that has them: ``source, model, test_set, row, image_id, label,
    pred_1 .. pred_k, correct_top1, correct_top5`` keyed by ``(source, model, test_set, image_id)`` (the row
    position when the store has no image ids). Written record by record (one row group each), so memory
    stays at one record's size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_write_bytes
from ..store.records import PredictionStore

__all__ = ["write_accuracies_parquet", "write_predictions_parquet", "write_exports"]


def write_accuracies_parquet(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The accuracy table as Parquet (atomic write)."""
    import io

    buf = io.BytesIO()
    df = table.copy()
    for c in ("flag", "model_type", "model_type_detail"):
        if c in df:
            df[c] = df[c].fillna("").astype(str)
    df.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def _const(value: str, n: int):
    """A dictionary-encoded column holding one string n times."""
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))


def write_predictions_parquet(stores: list[str | os.PathLike], path: str | os.PathLike) -> Path | None:
    """Per-image predictions of every record with predictions in ``stores``; None when there are none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    k_max = 5
    dict_str = pa.dictionary(pa.int32(), pa.string())  # one value per record: stored once, not per image
    schema = pa.schema([("source", dict_str), ("model", dict_str), ("test_set", dict_str),
                        ("row", pa.int32()), ("image_id", pa.string()), ("label", pa.int32()),
                        *[(f"pred_{i + 1}", pa.int32()) for i in range(k_max)],
                        ("correct_top1", pa.bool_()), ("correct_top5", pa.bool_())])  # fmt: skip
    try:
        for root in stores:
            store = PredictionStore(root)
            per_test_set: dict[str, tuple[np.ndarray, pa.Array, pa.Array]] = {}
            for rec in store.records():
                if rec.k == 0:
                    continue
                pred = store.predictions(rec.source, rec.model, rec.test_set)
                if rec.test_set not in per_test_set:
                    labels = store.labels(rec.test_set)
                    ids = store.image_ids(rec.test_set) or [str(i) for i in range(len(labels))]
                    per_test_set[rec.test_set] = (labels, pa.array(ids, pa.string()), pa.array(labels.astype(np.int32)))
                labels, ids, label_arr = per_test_set[rec.test_set]
                n = len(labels)
                cols = {"source": _const(rec.source, n), "model": _const(rec.model, n), "test_set": _const(rec.test_set, n),
                        "row": pa.array(np.arange(n, dtype=np.int32)), "image_id": ids, "label": label_arr}  # fmt: skip
                for i in range(k_max):
                    cols[f"pred_{i + 1}"] = pa.array(pred[:, i].astype(np.int32)) if i < pred.shape[1] else pa.nulls(n, pa.int32())
                cols["correct_top1"] = pa.array(pred[:, 0] == labels)
                cols["correct_top5"] = (pa.array((pred[:, :5] == labels[:, None]).any(axis=1))
                                        if pred.shape[1] >= 5 else pa.nulls(n, pa.bool_()))  # fmt: skip
                batch = pa.table(cols, schema=schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(batch)
        if writer is None:
            return None
        writer.close()
        writer = None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def write_exports(
    table: pd.DataFrame, out: str | os.PathLike, *, stores: list[str | os.PathLike] = (), predictions: bool = False
) -> list[Path]:
    """``OUT/accuracies.parquet`` and, with ``predictions`` and stores holding per-image predictions,
    ``OUT/predictions.parquet`` (millions of rows for the ImageNetV2 release: opt-in)."""
    out = Path(out)
    written = [write_accuracies_parquet(table, out / "accuracies.parquet")]
    if stores and predictions:
        p = write_predictions_parquet(list(stores), out / "predictions.parquet")
        if p is not None:
            written.append(p)
    return written
