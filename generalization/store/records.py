"""The prediction store: one place every part of the product writes into and reads from.

On-disk format (all plain files; see docs/store.md)::

    STORE/
      store.json                                   {"format": "generalization-store", "version": 1}
      labels/<test_set>.npy                        int64 labels, rows in the test set's fixed order
      labels/<test_set>.json                       n, num_classes, sha256 of the labels, image ids (optional)
      records/<test_set>/<source>/<model>.json     one record per (source, model, test set): counts + metadata
      records/<test_set>/<source>/<model>.<sha12>.npy   N x k top-k class indices, best first (k = 5 or 1)

``<source>`` and ``<model>`` are percent-encoded (``timm/resnet50`` -> ``timm%2Fresnet50``); the record holds the
real names. A record's JSON is written last and names its predictions file by content hash, so a reader
never sees a record whose predictions are missing or from another write, and an interrupted write leaves
the previous record intact. Each record is written under a per-record file lock, so two writers never
interleave; the last complete write wins.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from filelock import FileLock

from ..files import DataError, atomic_save_npy, atomic_write_json, load_json, load_npy
from ..metrics import accuracy_table_from_counts, topk_correct

__all__ = ["PredictionStore", "RecordExistsError", "Record", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class RecordExistsError(FileExistsError):
    """A different record for the same (source, model, test set) is already in the store."""


@dataclass(frozen=True)
class Record:
    source: str
    model: str
    test_set: str
    n: int
    top1_correct: int
    top5_correct: int | None
    k: int  # columns of stored predictions (0: accuracy only)
    meta: dict[str, Any]
    path: Path

    def as_row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model": self.model,
            "test_set": self.test_set,
            "n": self.n,
            "top1_correct": self.top1_correct,
            "top5_correct": self.top5_correct,
            "k": self.k,
            "flag": self.meta.get("flag", ""),
        }


def _key(name: str) -> str:
    if not name:
        raise ValueError("empty name")
    return quote(name, safe="-_.@+=,")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_sha(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _smallest_int_dtype(a: np.ndarray) -> np.dtype:
    if a.size == 0 or (a.min() >= np.iinfo(np.int16).min and a.max() <= np.iinfo(np.int16).max):
        return np.dtype(np.int16)
    return np.dtype(np.int32)


class PredictionStore:
    """A folder of prediction records. Cheap to construct; every method reads the disk afresh.

    Parameters
    ----------
    root : path
        The store's folder; created on first write.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- layout ---------------------------------------------------------------------------------------
    def _record_json(self, source: str, model: str, test_set: str) -> Path:
        return self.root / "records" / _key(test_set) / _key(source) / f"{_key(model)}.json"

    def _ensure_root(self) -> None:
        marker = self.root / "store.json"
        if not marker.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(marker, {"format": "generalization-store", "version": FORMAT_VERSION})
        else:
            info = load_json(marker)
            if info.get("format") != "generalization-store":
                raise DataError(f"{marker}: not a generalization store")
            if info.get("version", 0) > FORMAT_VERSION:
                raise DataError(f"{marker}: store format {info.get('version')} is newer than this package")

    # -- labels ---------------------------------------------------------------------------------------
    def put_labels(
        self,
        test_set: str,
        labels: np.ndarray,
        *,
        num_classes: int,
        image_ids: list[str] | None = None,
        source: str = "",
    ) -> None:
        """Record the labels (and optionally image ids) of a test set, in its fixed order.

        Refuses labels that disagree with those already stored: every record of a test set must use one order.
        """
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"labels of {test_set}: expected a 1-d integer array, got {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"labels of {test_set}: values outside 0..{num_classes - 1}")
        if image_ids is not None and len(image_ids) != len(labels):
            raise DataError(f"labels of {test_set}: {len(image_ids)} image ids for {len(labels)} labels")
        labels = labels.astype(np.int64)
        self._ensure_root()
        sha = _array_sha(labels)
        meta_path = self.root / "labels" / f"{_key(test_set)}.json"
        with FileLock(str(meta_path) + ".lock"):
            if meta_path.exists():
                old = load_json(meta_path)
                if old["labels_sha256"] != sha:
                    raise DataError(
                        f"{meta_path}: the store already holds different labels for {test_set} "
                        f"(n={old['n']}); a test set must keep one fixed order"
                    )
                if image_ids is not None and old.get("image_ids_sha256") not in (None, _sha256("\n".join(image_ids).encode())):
                    raise DataError(f"{meta_path}: the store already holds other image ids for {test_set}")
                if image_ids is None or old.get("image_ids_sha256"):
                    return
            atomic_save_npy(self.root / "labels" / f"{_key(test_set)}.npy", labels)
            meta = {
                "test_set": test_set,
                "n": int(labels.size),
                "num_classes": int(num_classes),
                "labels_sha256": sha,
                "source": source,
            }
            if image_ids is not None:
                atomic_write_json(self.root / "labels" / f"{_key(test_set)}.ids.json", list(image_ids))
                meta["image_ids_sha256"] = _sha256("\n".join(image_ids).encode())
            atomic_write_json(meta_path, meta)

    def labels(self, test_set: str) -> np.ndarray | None:
        """The stored labels of ``test_set``, or None if the store has none."""
        path = self.root / "labels" / f"{_key(test_set)}.npy"
        return load_npy(path) if path.exists() else None

    def image_ids(self, test_set: str) -> list[str] | None:
        path = self.root / "labels" / f"{_key(test_set)}.ids.json"
        return load_json(path) if path.exists() else None

    def test_sets(self) -> list[str]:
        d = self.root / "labels"
        if not d.is_dir():
            return []
        return sorted(load_json(p)["test_set"] for p in d.glob("*.json") if not p.name.endswith(".ids.json"))

    # -- records --------------------------------------------------------------------------------------
    def has(self, source: str, model: str, test_set: str) -> bool:
        return self._record_json(source, model, test_set).exists()

    def put(
        self,
        *,
        source: str,
        model: str,
        test_set: str,
        predictions: np.ndarray | None = None,
        n: int | None = None,
        top1_correct: int | None = None,
        top5_correct: int | None = None,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Record:
        """Write one record.

        With ``predictions`` (N x k class indices, best first, k >= 1; or a 1-d array of top-1 labels) the
        counts are computed against the stored labels of ``test_set`` (``put_labels`` first). Without
        predictions, ``n`` and ``top1_correct`` (and optionally ``top5_correct``) are required: an
        accuracy-only row, e.g. from a published table.

        An identical record already present is left as it is. A different one raises
        :class:`RecordExistsError` unless ``overwrite=True``.
        """
        meta = dict(meta or {})
        pred_sha = None
        if predictions is not None:
            predictions = np.asarray(predictions)
            if predictions.ndim == 1:
                predictions = predictions[:, None]
            if predictions.ndim != 2 or not np.issubdtype(predictions.dtype, np.integer):
                raise DataError(
                    f"predictions for {model} on {test_set}: expected an N x k integer array, "
                    f"got {predictions.dtype} {predictions.shape}"
                )
            labels = self.labels(test_set)
            if labels is None:
                raise DataError(f"store {self.root}: no labels for {test_set}; call put_labels first")
            if len(predictions) != len(labels):
                raise DataError(
                    f"predictions for {model} on {test_set}: {len(predictions)} rows, the test set has {len(labels)}"
                )
            num_classes = load_json(self.root / "labels" / f"{_key(test_set)}.json")["num_classes"]
            if predictions.size and (predictions.min() < 0 or predictions.max() >= num_classes):
                raise DataError(
                    f"predictions for {model} on {test_set}: class indices outside 0..{num_classes - 1}"
                )
            predictions = predictions.astype(_smallest_int_dtype(predictions))
            n = len(labels)
            top1_correct = int(topk_correct(predictions, labels, 1))
            top5_correct = int(topk_correct(predictions, labels, 5)) if predictions.shape[1] >= 5 else None
            pred_sha = _array_sha(predictions)
        else:
            if n is None or top1_correct is None:
                raise ValueError("an accuracy-only record needs n and top1_correct")
            for name, v in (("top1_correct", top1_correct), ("top5_correct", top5_correct)):
                if v is not None and not 0 <= v <= n:
                    raise DataError(f"{model} on {test_set}: {name}={v} outside 0..{n}")
        k = 0 if predictions is None else int(predictions.shape[1])

        self._ensure_root()
        path = self._record_json(source, model, test_set)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "source": source,
            "model": model,
            "test_set": test_set,
            "n": int(n),
            "top1_correct": int(top1_correct),
            "top5_correct": None if top5_correct is None else int(top5_correct),
            "k": k,
            "predictions_file": None if pred_sha is None else f"{path.stem}.{pred_sha[:12]}.npy",
            "predictions_sha256": pred_sha,
            "meta": meta,
        }
        with FileLock(str(path) + ".lock"):
            old = load_json(path) if path.exists() else None
            if old is not None:
                same = all(old.get(f) == body[f] for f in ("n", "top1_correct", "top5_correct", "k", "predictions_sha256"))
                if same:
                    return self._to_record(old, path)
                if not overwrite:
                    raise RecordExistsError(
                        f"{path}: a different record for ({source}, {model}, {test_set}) exists "
                        f"(top-1 {old['top1_correct']}/{old['n']} vs new {top1_correct}/{n}); pass overwrite=True"
                    )
            if predictions is not None:
                atomic_save_npy(path.parent / body["predictions_file"], predictions)
            body["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            atomic_write_json(path, body)
            # the previous predictions file is no longer referenced
            if old is not None and old.get("predictions_file") and old["predictions_file"] != body["predictions_file"]:
                (path.parent / old["predictions_file"]).unlink(missing_ok=True)
        return self._to_record(body, path)

    def _to_record(self, body: dict[str, Any], path: Path) -> Record:
        return Record(
            source=body["source"],
            model=body["model"],
            test_set=body["test_set"],
            n=body["n"],
            top1_correct=body["top1_correct"],
            top5_correct=body["top5_correct"],
            k=body["k"],
            meta=body.get("meta", {}),
            path=path,
        )

    def records(self) -> list[Record]:
        """All records, sorted by (test set, source, model)."""
        d = self.root / "records"
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.glob("*/*/*.json")):
            try:
                out.append(self._to_record(load_json(p), p))
            except (KeyError, DataError) as e:
                raise DataError(f"{p}: not a valid store record ({e})") from e
        return sorted(out, key=lambda r: (r.test_set, r.source, r.model))

    def get(self, source: str, model: str, test_set: str) -> Record:
        path = self._record_json(source, model, test_set)
        if not path.exists():
            raise KeyError(f"no record for ({source}, {model}, {test_set}) in {self.root}")
        return self._to_record(load_json(path), path)

    def predictions(self, source: str, model: str, test_set: str, *, verify: bool = True) -> np.ndarray | None:
        """The stored N x k predictions of a record (None for an accuracy-only record)."""
        path = self._record_json(source, model, test_set)
        body = load_json(path)
        if not body.get("predictions_file"):
            return None
        arr = load_npy(path.parent / body["predictions_file"])
        if verify and _array_sha(arr) != body["predictions_sha256"]:
            raise DataError(f"{path.parent / body['predictions_file']}: content does not match its record")
        return arr

    def accuracy_table(self) -> pd.DataFrame:
        """One tidy row per record (and per bulk-table row): counts, percentages, Clopper-Pearson 95 %
        intervals, ``model_type``."""
        rows = [r.as_row() for r in self.records()]
        from .tables import with_bulk_rows  # the bulk tables of published accuracies (tables.py)

        return accuracy_table_from_counts(with_bulk_rows(self, pd.DataFrame(rows)))
