"""The prediction store: one place every part of the product writes into and reads from.

On-disk format (all plain files; see docs/store.md)::

    STORE/
      store.json                                   {"format": "generalization-store", "version": 1}
      labels/<test_set>.npy                        int64 labels, rows in the test set's fixed order
      labels/<test_set>.json                       n, num_classes, sha256 of the labels, image ids (optional)
      records/<test_set>/<source>/<model>.json     one record per (source, model, test set): counts + metadata
      records/<test_set>/<source>/<model>.<sha12>.npy   N x k top-k class indices, best first (k = 5 or 1)

``<test_set>``, ``<source>`` and ``<model>`` are percent-encoded (``timm/resnet50`` -> ``timm%2Fresnet50``, a
leading dot as ``%2E``, so no name can leave ``records/``); the record holds the real names.

The store never touches a path it did not make: a record's ``predictions_file`` must be exactly
``<model key>.<first 12 hex of its sha256>.npy`` in the record's own folder, and no file is read through a
link out of the store. :meth:`PredictionStore.verify` re-derives every record's counts from its predictions
and the labels (checking both hashes); ``analyze`` runs it before reading the counts. A record's JSON is written last and names its predictions file by content hash, so a reader
never sees a record whose predictions are missing or from another write, and an interrupted write leaves
the previous record intact. Each record is written under a per-record file lock, so two writers never
interleave; the last complete write wins.
"""

from __future__ import annotations

import hashlib
import numbers
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock

from ..files import DataError, atomic_save_npy, atomic_write_json, check_unique_ids, load_json, load_npy
from ..metrics import accuracy_table_from_counts, topk_correct
from .names import RecordExistsError
from .names import file_key as _key

__all__ = ["PredictionStore", "RecordExistsError", "Record", "VerifyReport", "FORMAT_VERSION"]

FORMAT_VERSION = 1


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
            "repair": self.meta.get("repair", ""),
        }


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_counts(what: str, n: Any, top1: Any, top5: Any) -> None:
    """0 < n, 0 <= top-1 <= top-5 <= n, all integers (top-5 may be None)."""
    if not _is_int(n) or n <= 0:
        raise DataError(f"{what}: n must be a positive integer, got {n!r}")
    if not _is_int(top1) or not 0 <= top1 <= n:
        raise DataError(f"{what}: top1_correct must be an integer in 0..{n}, got {top1!r}")
    if top5 is not None and (not _is_int(top5) or not top1 <= top5 <= n):
        raise DataError(f"{what}: top5_correct must be null or an integer in top1_correct..n ({top1}..{n}), got {top5!r}")


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


@dataclass
class VerifyReport:
    """What :meth:`PredictionStore.verify` checked."""

    root: Path
    records: int = 0
    with_predictions: int = 0
    test_sets: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.root}: {self.records} records ({self.with_predictions} with predictions, counts re-derived "
            f"from them and the labels of {self.test_sets} test sets) in {self.seconds:.1f} s"
        )
        if self.ok:
            return head + ": all verified"
        if not self.records:
            return "; ".join(self.problems)
        shown = self.problems[:10]
        more = f"; and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        return f"{head}: {len(self.problems)} problem(s): " + "; ".join(shown) + more


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

    def _inside(self, path: Path, folder: Path) -> Path:
        """``path`` if it resolves to a file under ``folder`` (no link out of the store), else DataError."""
        if getattr(self, "_real_root", None) is None:
            self._real_root = self.root.resolve()
        # folder's real path without resolving it again: a link anywhere below the root leads outside it
        real, inside = path.resolve(), self._real_root / folder.relative_to(self.root)
        if not real.is_relative_to(inside):
            raise DataError(f"{path}: resolves outside the store's {folder.name}/ ({real}); refusing to read it")
        return path

    def _ensure_root(self) -> None:
        marker = self.root / "store.json"
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"{self.root}: not a folder, cannot be a store")
        if not marker.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(marker, {"format": "generalization-store", "version": FORMAT_VERSION})
        else:
            info = load_json(marker)
            if not isinstance(info, dict) or info.get("format") != "generalization-store":
                raise DataError(f"{marker}: not a generalization store")
            version = info.get("version", 0)
            if not _is_int(version) or version > FORMAT_VERSION:
                raise DataError(f"{marker}: store format {version!r} is newer than this package (or not a number)")

    # -- labels ---------------------------------------------------------------------------------------
    def _labels_meta(self, test_set: str) -> dict[str, Any] | None:
        path = self.root / "labels" / f"{_key(test_set)}.json"
        if not path.exists():
            return None
        meta = load_json(self._inside(path, self.root / "labels"))
        problem = None
        if not isinstance(meta, dict):
            problem = "not a JSON object"
        elif meta.get("test_set") != test_set:
            problem = f"names test set {meta.get('test_set')!r}"
        elif not _is_int(meta.get("n")) or meta["n"] <= 0:
            problem = f"n must be a positive integer, got {meta.get('n')!r}"
        elif not _is_int(meta.get("num_classes")) or meta["num_classes"] <= 0:
            problem = f"num_classes must be a positive integer, got {meta.get('num_classes')!r}"
        elif not isinstance(meta.get("labels_sha256"), str) or not _SHA256.fullmatch(meta["labels_sha256"]):
            problem = "labels_sha256 is not a sha256"
        if problem:
            raise DataError(f"{path}: not a valid labels record of {test_set} ({problem})")
        return meta

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
        Labels already stored as given are left alone without taking a lock (a read-only store is fine).
        """
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"labels of {test_set}: expected a 1-d integer array, got {labels.dtype} {labels.shape}")
        if labels.size == 0:
            raise DataError(f"labels of {test_set}: no labels (a test set needs at least one image)")
        if not _is_int(num_classes) or num_classes <= 0:
            raise DataError(f"labels of {test_set}: num_classes must be a positive integer, got {num_classes!r}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DataError(f"labels of {test_set}: values outside 0..{num_classes - 1}")
        if image_ids is not None:
            image_ids = [str(i) for i in image_ids]
            if len(image_ids) != len(labels):
                raise DataError(f"labels of {test_set}: {len(image_ids)} image ids for {len(labels)} labels")
            check_unique_ids(image_ids, f"labels of {test_set}")
        labels = labels.astype(np.int64)
        sha = _array_sha(labels)
        ids_sha = None if image_ids is None else _sha256("\n".join(image_ids).encode())
        meta_path = self.root / "labels" / f"{_key(test_set)}.json"

        def unchanged(old: dict[str, Any] | None) -> bool:
            if old is None:
                return False
            if old["labels_sha256"] != sha:
                raise DataError(
                    f"{meta_path}: the store already holds different labels for {test_set} "
                    f"(n={old['n']}); a test set must keep one fixed order"
                )
            if ids_sha is not None and old.get("image_ids_sha256") not in (None, ids_sha):
                raise DataError(f"{meta_path}: the store already holds other image ids for {test_set}")
            return ids_sha is None or bool(old.get("image_ids_sha256"))

        if unchanged(self._labels_meta(test_set)):  # nothing to write: no lock, no write access needed
            return
        self._ensure_root()
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(meta_path) + ".lock"):
            if unchanged(self._labels_meta(test_set)):
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
                meta["image_ids_sha256"] = ids_sha
            atomic_write_json(meta_path, meta)

    def labels(self, test_set: str) -> np.ndarray | None:
        """The stored labels of ``test_set`` (checked against their recorded hash), or None if the store has none."""
        meta = self._labels_meta(test_set)
        if meta is None:
            return None
        path = self._inside(self.root / "labels" / f"{_key(test_set)}.npy", self.root / "labels")
        labels = load_npy(path)
        if labels.dtype != np.int64 or labels.shape != (meta["n"],) or _array_sha(labels) != meta["labels_sha256"]:
            raise DataError(
                f"{path}: the labels of {test_set} do not match their record "
                f"({labels.dtype} {labels.shape}; hash differs from labels_sha256)"
            )
        if labels.min() < 0 or labels.max() >= meta["num_classes"]:
            raise DataError(f"{path}: labels outside 0..{meta['num_classes'] - 1}")
        return labels

    def image_ids(self, test_set: str) -> list[str] | None:
        meta = self._labels_meta(test_set)
        path = self.root / "labels" / f"{_key(test_set)}.ids.json"
        if meta is None or not path.exists():
            return None
        ids = load_json(self._inside(path, self.root / "labels"))
        if (
            not isinstance(ids, list)
            or not all(isinstance(i, str) for i in ids)
            or _sha256("\n".join(ids).encode()) != meta.get("image_ids_sha256")
        ):
            raise DataError(f"{path}: the image ids of {test_set} do not match their record")
        return ids

    def test_sets(self) -> list[str]:
        d = self.root / "labels"
        if not d.is_dir():
            return []
        names = []
        for p in sorted(d.glob("*.json")):
            if p.name.endswith(".ids.json"):
                continue
            body = load_json(self._inside(p, d))
            name = body.get("test_set") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name or f"{_key(name)}.json" != p.name:
                raise DataError(f"{p}: not a valid labels record (its test_set does not match its file name)")
            names.append(name)
        return sorted(names)

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
        accuracy-only row, e.g. from a published table (0 < n, 0 <= top-1 <= top-5 <= n, integers).

        An identical record already present is left as it is (without a lock: a read-only store is fine).
        A different one raises :class:`RecordExistsError` unless ``overwrite=True``.
        """
        meta = dict(meta or {})
        path = self._record_json(source, model, test_set)
        pred_sha = None
        if predictions is not None:
            predictions = np.asarray(predictions)
            if predictions.ndim == 1:
                predictions = predictions[:, None]
            if predictions.ndim != 2 or not np.issubdtype(predictions.dtype, np.integer) or predictions.shape[1] < 1:
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
            num_classes = self._labels_meta(test_set)["num_classes"]
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
                raise DataError(f"{model} on {test_set}: an accuracy-only record needs n and top1_correct")
            _check_counts(f"{model} on {test_set}", n, top1_correct, top5_correct)
        k = 0 if predictions is None else int(predictions.shape[1])
        for name, v in (("source", source), ("model", model), ("test_set", test_set)):
            if not isinstance(v, str) or not v.strip():
                raise DataError(f"a record's {name} must be a non-empty string, got {v!r}")

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
        fields = ("n", "top1_correct", "top5_correct", "k", "predictions_sha256")

        def read_old() -> dict[str, Any] | None:
            if not path.exists():
                return None
            old = load_json(self._inside(path, self.root / "records"))
            try:
                self._check_body(old, path)
            except DataError:
                if not overwrite:
                    raise
                return {}  # replaced below; nothing it names is deleted
            return old

        old = read_old()
        if old and all(old.get(f) == body[f] for f in fields):  # identical: nothing to write, no lock
            return self._to_record(old, path)
        self._ensure_root()
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            old = read_old()
            if old:
                if all(old.get(f) == body[f] for f in fields):
                    return self._to_record(old, path)
                if not overwrite:
                    raise RecordExistsError(
                        f"{path}: a different record for ({source}, {model}, {test_set}) exists "
                        f"(top-1 {old['top1_correct']}/{old['n']} vs new {top1_correct}/{n}); pass overwrite=True "
                        "(evaluate: --overwrite) to replace it, or use another store"
                    )
            if predictions is not None:
                atomic_save_npy(path.parent / body["predictions_file"], predictions)
            body["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            atomic_write_json(path, body)
            # the previous predictions file is no longer referenced (its name was checked: a file we made)
            if old and old.get("predictions_file") and old["predictions_file"] != body["predictions_file"]:
                (path.parent / old["predictions_file"]).unlink(missing_ok=True)
        return self._to_record(body, path)

    def _check_body(self, body: Any, path: Path) -> None:
        """A record's JSON is well formed, its counts are consistent and it names only a file we made."""
        where = f"{path}: not a valid store record"
        if not isinstance(body, dict):
            raise DataError(f"{where} (not a JSON object)")
        for name in ("source", "model", "test_set"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise DataError(f"{where} ({name} must be a non-empty string, got {body.get(name)!r})")
        expected = self._record_json(body["source"], body["model"], body["test_set"])
        if expected != path:
            raise DataError(f"{where} (it names ({body['source']}, {body['model']}, {body['test_set']}), "
                            f"whose record is {expected})")
        try:
            _check_counts("counts", body.get("n"), body.get("top1_correct"), body.get("top5_correct"))
        except DataError as e:
            raise DataError(f"{where} ({e})") from None
        k, file, sha = body.get("k"), body.get("predictions_file"), body.get("predictions_sha256")
        if not _is_int(k) or k < 0:
            raise DataError(f"{where} (k must be a non-negative integer, got {k!r})")
        if k == 0:
            if file is not None or sha is not None:
                raise DataError(f"{where} (an accuracy-only record (k = 0) names a predictions file)")
        else:
            if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
                raise DataError(f"{where} (predictions_sha256 is not a sha256: {sha!r})")
            if file != f"{path.stem}.{sha[:12]}.npy":
                raise DataError(
                    f"{where} (predictions_file {file!r} is not {path.stem}.{sha[:12]}.npy, the name the store "
                    "gives it; refusing to read or delete it)"
                )
            if (k >= 5) != (body.get("top5_correct") is not None):
                raise DataError(f"{where} (k = {k} but top5_correct is {body.get('top5_correct')!r})")
        if not isinstance(body.get("meta", {}), dict):
            raise DataError(f"{where} (meta must be a JSON object)")

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

    def _read_record(self, path: Path) -> dict[str, Any]:
        body = load_json(self._inside(path, self.root / "records"))
        self._check_body(body, path)
        return body

    def records(self) -> list[Record]:
        """All records, sorted by (test set, source, model). Each is checked (:meth:`_check_body`)."""
        d = self.root / "records"
        if not d.is_dir():
            return []
        out = [self._to_record(self._read_record(p), p) for p in sorted(d.glob("*/*/*.json"))]
        return sorted(out, key=lambda r: (r.test_set, r.source, r.model))

    def get(self, source: str, model: str, test_set: str) -> Record:
        path = self._record_json(source, model, test_set)
        if not path.exists():
            raise KeyError(f"no record for ({source}, {model}, {test_set}) in {self.root}")
        return self._to_record(self._read_record(path), path)

    def _load_predictions(self, body: dict[str, Any], path: Path, verify: bool) -> np.ndarray:
        file = self._inside(path.parent / body["predictions_file"], path.parent)
        if file.is_symlink():
            raise DataError(f"{file}: a link, not a predictions file the store wrote; refusing to read it")
        arr = load_npy(file)
        if arr.ndim != 2 or arr.shape != (body["n"], body["k"]) or not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{file}: {arr.dtype} {arr.shape}, its record says {body['n']} x {body['k']} integers")
        if verify and _array_sha(arr) != body["predictions_sha256"]:
            raise DataError(f"{file}: content does not match its record {path} (hash differs)")
        return arr

    def predictions(self, source: str, model: str, test_set: str, *, verify: bool = True) -> np.ndarray | None:
        """The stored N x k predictions of a record (None for an accuracy-only record)."""
        path = self._record_json(source, model, test_set)
        body = self._read_record(path)
        if not body.get("predictions_file"):
            return None
        return self._load_predictions(body, path, verify)

    def verify(self, *, raise_on_problem: bool = True) -> VerifyReport:
        """Check the whole store: every record well formed; for every record with predictions, the
        predictions' and labels' hashes, and the counts re-derived from them equal to the record's.

        Raises
        ------
        DataError
            Naming each bad record (with ``raise_on_problem``; otherwise the report lists them).
        """
        t0 = time.perf_counter()
        report = VerifyReport(self.root)
        d = self.root / "records"
        if self.root.exists():
            marker = self.root / "store.json"
            if not marker.exists():
                report.problems.append(f"{marker}: missing (not a generalization store)")
            else:
                try:
                    self._ensure_root()
                except DataError as e:
                    report.problems.append(str(e))
        else:
            report.problems.append(f"{self.root}: no such store")
        labels: dict[str, np.ndarray | DataError | None] = {}
        for p in sorted(d.glob("*/*/*.json")) if d.is_dir() else []:
            report.records += 1
            try:
                inode = p.stat().st_ino
                try:
                    report.with_predictions += self._verify_record(p, labels)
                except DataError:
                    # a writer replaced the record while we read it (its old predictions file is deleted
                    # right after): check the new one once more
                    if not p.exists() or p.stat().st_ino == inode:
                        raise
                    report.with_predictions += self._verify_record(p, labels)
            except (DataError, FileNotFoundError) as e:
                report.problems.append(str(e))
        report.test_sets = sum(isinstance(v, np.ndarray) for v in labels.values())
        report.seconds = time.perf_counter() - t0
        if raise_on_problem and not report.ok:
            raise DataError(report.summary())
        return report

    def _verify_record(self, p: Path, labels: dict[str, np.ndarray | DataError | None]) -> int:
        """Check one record (``labels``: the test sets' labels read so far); 1 if it has predictions."""
        body = self._read_record(p)
        ts = body["test_set"]
        if ts not in labels:
            try:
                labels[ts] = self.labels(ts)
                self.image_ids(ts)  # checked against image_ids_sha256 when the store has them
            except DataError as e:
                labels[ts] = e
        lab = labels[ts]
        if isinstance(lab, DataError):
            raise DataError(f"{p}: its test set's labels are bad: {lab}")
        if lab is not None and body["n"] != len(lab) and body["k"] > 0:
            raise DataError(f"{p}: n = {body['n']}, the stored labels of {ts} have {len(lab)}")
        if body["k"] == 0:
            return 0
        if lab is None:
            raise DataError(f"{p}: has predictions but the store has no labels for {ts}")
        arr = self._load_predictions(body, p, verify=True)
        hit = arr[:, :5] == lab[:, None]  # one comparison for both counts
        top1 = int(hit[:, 0].sum())
        top5 = int(hit.any(axis=1).sum()) if arr.shape[1] >= 5 else None
        if (top1, top5) != (body["top1_correct"], body["top5_correct"]):
            raise DataError(
                f"{p}: counts do not match its predictions: the record says top-1 {body['top1_correct']}, "
                f"top-5 {body['top5_correct']} of {body['n']}; the predictions give {top1}, {top5}"
            )
        return 1

    def accuracy_table(self, *, verify: bool = False) -> pd.DataFrame:
        """One tidy row per record (and per bulk-table row): counts, percentages, Clopper-Pearson 95 %
        intervals, ``model_type``.

        With ``verify``, :meth:`verify` runs first (every count re-derived from its predictions and labels)."""
        if verify:
            self.verify()
        rows = [r.as_row() for r in self.records()]
        from .tables import with_bulk_rows  # the bulk tables of published accuracies (tables.py)

        return accuracy_table_from_counts(with_bulk_rows(self, pd.DataFrame(rows)))
