"""Importers: released predictions and published accuracy tables -> the prediction store.

Sources (the ``source`` column of the store):

``imagenetv2-release``
    A clone of modestyachts/ImageNetV2: ``data/datasets/<dataset>.json`` (ordered ``image_filenames`` =
    ``[image id, wnid]``) and ``data/predictions/<dataset>/<model>.npy`` (N x 5 top-5 class indices, any
    integer dtype). Class index = position of the wnid in the sorted list of the 1,000 wnids.
``cifar10.1-release``
    A clone of modestyachts/CIFAR-10.1: ``model_predictions/{original,v4,v6}_predictions/<model>_predictions.json``
    (top-1 labels) and ``datasets/cifar10.1_v{4,6}_labels.npy``, with the CIFAR-10 test labels from the
    official ``cifar-10-batches-py/test_batch`` or a labels ``.npy``.
``timm``
    timm's ``results-imagenet.csv`` and ``results-imagenetv2-matched-frequency.csv`` (accuracy only; one model
    per ``model`` + ``img_size``, stored as ``<model>@<img_size>``).
``testbed``
    imagenet-testbed's wide ``robustness_top1s.csv`` (percent, one column per evaluation setting; see
    :data:`TESTBED_COLUMNS` for the columns taken).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import DataError, cifar10_test_batch, load_cifar10_batch, load_json, load_npy
from ..test_sets import TEST_SETS
from .records import PredictionStore

__all__ = [
    "ImportReport",
    "IMAGENETV2_DATASETS",
    "TESTBED_COLUMNS",
    "import_imagenetv2",
    "import_cifar101",
    "import_timm",
    "import_testbed",
    "read_cifar10_test_labels",
    "suspect_reason",
    "rank_order_defect",
]

IMAGENETV2_SOURCE = "imagenetv2-release"
CIFAR101_SOURCE = "cifar10.1-release"

#: release dataset file -> our test-set name
IMAGENETV2_DATASETS = {
    "imagenet-validation-original": "imagenet-val",
    "imagenetv2-b-33": "imagenetv2-matched-frequency",
    "imagenetv2-a-44": "imagenetv2-threshold0.7",
    "imagenetv2-c-12": "imagenetv2-top-images",
}

#: imagenet-testbed column -> our test-set name. The testbed evaluates ImageNetV2 in two versions; we take
#: the ``-format-val`` ones (images re-encoded like the validation set), which its papers report.
TESTBED_COLUMNS = {
    "val": "imagenet-val",
    "imagenetv2-matched-frequency-format-val": "imagenetv2-matched-frequency",
    "imagenetv2-threshold-0.7-format-val": "imagenetv2-threshold0.7",
    "imagenetv2-top-images-format-val": "imagenetv2-top-images",
}

#: timm results file kind -> our test-set name
TIMM_FILES = {"imagenet": "imagenet-val", "imagenetv2-matched-frequency": "imagenetv2-matched-frequency"}


@dataclass
class ImportReport:
    """What an import did: records written, left as they were, flagged, skipped."""

    source: str
    written: int = 0
    unchanged: int = 0
    flagged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.source}: {self.written} records written, {self.unchanged} already present"]
        lines += [f"  flagged: {f}" for f in self.flagged]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def suspect_reason(top1_correct: int, top5_correct: int | None, n: int) -> str:
    """Flag a row whose top-1 is implausibly low for its top-5.

    Real classifiers have top-1/top-5 ratios above ~0.5 whenever top-5 is meaningful; a ratio under 0.25
    with top-5 above 10 % points to broken predictions (the release's ``fv_16k`` on the new sets as
    released: ~2.5 % top-1 with ~38 % top-5, its columns in reverse rank order). Returns "" for a plausible row.
    """
    if top5_correct is None or n == 0 or top5_correct < 0.10 * n:
        return ""
    if top1_correct < 0.25 * top5_correct:
        return (
            f"suspect: top-1 {100 * top1_correct / n:.2f} % is implausibly low for top-5 "
            f"{100 * top5_correct / n:.2f} %"
        )
    return ""


def _put(store: PredictionStore, report: ImportReport, overwrite: bool, **kw) -> None:
    existed = store.has(kw["source"], kw["model"], kw["test_set"])
    before = store.get(kw["source"], kw["model"], kw["test_set"]) if existed else None
    rec = store.put(overwrite=overwrite, **kw)
    if before is not None and (before.top1_correct, before.top5_correct) == (rec.top1_correct, rec.top5_correct):
        report.unchanged += 1
    else:
        report.written += 1


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: {what} not found (no such folder)")
    return path


# ------------------------------------------------------------------------------------------ ImageNetV2


def _release_wnids(release: Path, dataset_jsons: dict[str, dict]) -> list[str]:
    info = release / "data" / "metadata" / "class_info.json"
    if info.exists():
        wnids = sorted(c["wnid"] for c in load_json(info))
    else:
        val = dataset_jsons.get("imagenet-validation-original")
        if val is None:
            raise DataError(f"{release}: neither data/metadata/class_info.json nor the validation JSON found")
        wnids = sorted({w for _, w in val["image_filenames"]})
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise DataError(f"{release}: expected 1,000 distinct wnids, found {len(set(wnids))}")
    return wnids


#: how many standard errors a column's lead must have before the rank order counts as broken / as recovered
RANK_ORDER_Z = 4.0
RANK_GAP_Z = 2.0


def rank_order_defect(predictions: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Check, from the data, that the columns of a top-k array are in rank order (best guess first).

    For any real classifier the hits per column fall with the rank: column 0 (top-1) is right far more often
    than column 1, and so on. The check counts the hits of each column. If some later column beats column 0
    by more than :data:`RANK_ORDER_Z` standard errors (Poisson approximation ``(c_j - c_0)/sqrt(c_j + c_0)``),
    the columns are not in rank order. The repair is the permutation that sorts the columns by their hits,
    returned only when that order is unambiguous (each neighbouring pair apart by :data:`RANK_GAP_Z`
    standard errors); the set of the top-k (and so the top-k accuracy) is unchanged by it.

    Returns ``(permutation, description)``: ``(None, "")`` for an array in rank order, ``(None, why)`` for a
    broken order that cannot be recovered, ``(perm, what)`` when ``predictions[:, perm]`` is the repair.
    """
    hits = (predictions == np.asarray(labels)[:, None]).sum(axis=0).astype(float)
    if predictions.shape[1] < 2 or hits.sum() < 0.10 * len(predictions):
        return None, ""  # too few hits to say anything about the order
    j = int(np.argmax(hits))
    if j == 0 or (hits[j] - hits[0]) / np.sqrt(hits[j] + hits[0]) < RANK_ORDER_Z:
        return None, ""
    counts = ", ".join(str(int(h)) for h in hits)
    perm = np.argsort(-hits, kind="stable")
    s = hits[perm]
    gaps = (s[:-1] - s[1:]) / np.sqrt(np.maximum(s[:-1] + s[1:], 1.0))
    if np.any(gaps < RANK_GAP_Z):
        return None, (f"columns not in rank order (hits per column {counts} of {len(predictions)}); the "
                      "order cannot be recovered unambiguously")  # fmt: skip
    kind = " (ranks reversed)" if np.array_equal(perm, np.arange(len(hits))[::-1]) else ""
    what = (f"columns reordered {','.join(str(int(v)) for v in perm)}{kind}: hits per released column were "
            f"{counts} of {len(predictions)}, so the released top-1 column was not the model's best guess")  # fmt: skip
    return perm, what


def _check_dataset_json(path: Path, d: object) -> dict:
    """A release dataset JSON: ``image_filenames`` a non-empty list of [image id, wnid] strings, no id twice."""
    entries = d.get("image_filenames") if isinstance(d, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: no 'image_filenames' list")
    for i, e in enumerate(entries):
        if not (isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) and v for v in e)):
            raise DataError(f"{path}: image_filenames[{i}] is {str(e)[:60]}, expected [image id, wnid]")
    seen: set[str] = set()
    twice = next((i for i, _ in entries if i in seen or seen.add(i)), None)
    if twice is not None:
        raise DataError(f"{path}: image id {twice!r} is listed twice (one image would be scored twice)")
    return d


def import_imagenetv2(
    release: str | os.PathLike,
    store: str | os.PathLike | PredictionStore,
    *,
    overwrite: bool = False,
    repair: bool = True,
) -> ImportReport:
    """Import the ImageNetV2 release's top-5 predictions for the original and the three new test sets.

    Validates each array (integer dtype, N x 5, class indices 0..999, N = the dataset JSON's image count)
    and reconciles the release's model-name drift (``fv_16k_model`` on some new sets is ``fv_16k``).

    Each array's column order is checked against the labels (:func:`rank_order_defect`). The release's
    ``fv_16k`` arrays on the three new sets hold the top-5 in *ascending* rank order (hits per column rise
    from about 2.5 % to 19-27 %). With ``repair`` (the default) such an array is stored with its columns
    put back in rank order and the record's metadata says so (``meta["repair"]``, with the released top-1
    count in ``meta["released_top1_correct"]``); with ``repair=False`` it is stored as released. Rows that
    stay implausible (top-1 far below top-5, see :func:`suspect_reason`) are imported and flagged
    (``meta["flag"]``), which keeps them out of fits.
    """
    release = _require_dir(Path(release), "ImageNetV2 release")
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report = ImportReport(IMAGENETV2_SOURCE)
    ds_dir = _require_dir(release / "data" / "datasets", "ImageNetV2 release folder data/datasets")
    pred_dir = _require_dir(release / "data" / "predictions", "ImageNetV2 release folder data/predictions")

    jsons = {}
    for name in IMAGENETV2_DATASETS:
        path = ds_dir / f"{name}.json"
        if not path.exists():
            raise DataError(f"{path}: dataset JSON missing from the release")
        jsons[name] = _check_dataset_json(path, load_json(path))
    wnids = _release_wnids(release, jsons)
    index = {w: i for i, w in enumerate(wnids)}

    for name, test_set in IMAGENETV2_DATASETS.items():
        entries = jsons[name]["image_filenames"]
        try:
            labels = np.array([index[w] for _, w in entries], dtype=np.int64)
        except KeyError as e:
            raise DataError(f"{ds_dir / (name + '.json')}: unknown wnid {e.args[0]!r}") from None
        expected = TEST_SETS[test_set].num_images
        if len(labels) != expected:
            report.notes.append(f"{name}.json has {len(labels)} images (the published set has {expected})")
        store.put_labels(test_set, labels, num_classes=1000, image_ids=[i for i, _ in entries], source=IMAGENETV2_SOURCE)

        folder = _require_dir(pred_dir / name, f"predictions folder for {name}")
        files = sorted(folder.glob("*.npy"))
        if not files:
            raise DataError(f"{folder}: no .npy prediction files")
        for f in files:
            arr = load_npy(f)
            if not np.issubdtype(arr.dtype, np.integer):
                raise DataError(f"{f}: expected integer class indices, found dtype {arr.dtype}")
            if arr.ndim != 2 or arr.shape[1] != 5:
                raise DataError(f"{f}: expected shape (N, 5) of top-5 predictions, found {arr.shape}")
            if arr.shape[0] != len(labels):
                raise DataError(f"{f}: {arr.shape[0]} rows, but {name}.json lists {len(labels)} images")
            if arr.size and (arr.min() < 0 or arr.max() > 999):
                raise DataError(f"{f}: class indices outside 0..999 (min {arr.min()}, max {arr.max()})")
            model = f.stem.removesuffix("_model")  # the release names two Fisher-vector models fv_*_model
            meta = {"release_file": f"data/predictions/{name}/{f.name}", "release_dataset": name}
            if model != f.stem:
                meta["release_name"] = f.stem
            perm, what = rank_order_defect(arr, labels)
            if perm is not None and repair:
                meta["repair"] = what
                meta["released_top1_correct"] = int((arr[:, 0] == labels).sum())
                arr = np.ascontiguousarray(arr[:, perm])
                report.notes.append(f"{model} on {test_set}: repaired, {what}")
            elif what:
                report.notes.append(f"{model} on {test_set}: {what}" + ("" if repair else "; not repaired (repair off)"))
            top1 = int((arr[:, 0] == labels).sum())
            top5 = int((arr == labels[:, None]).any(axis=1).sum())
            reason = suspect_reason(top1, top5, len(labels))
            if reason:
                meta["flag"] = reason
                report.flagged.append(f"{model} on {test_set}: {reason}")
            _put(store, report, overwrite, source=IMAGENETV2_SOURCE, model=model, test_set=test_set,
                 predictions=arr, meta=meta)
    return report


# ------------------------------------------------------------------------------------------ CIFAR-10.1


def read_cifar10_test_labels(
    *, labels_npy: str | os.PathLike | None = None, cifar10_root: str | os.PathLike | None = None
) -> np.ndarray:
    """The 10,000 CIFAR-10 test labels in the official order, from a labels ``.npy`` or from
    ``<cifar10_root>/cifar-10-batches-py/test_batch`` (read with a restricted unpickler)."""
    if (labels_npy is None) == (cifar10_root is None):
        raise ValueError("give exactly one of labels_npy and cifar10_root")
    if labels_npy is not None:
        path = Path(labels_npy)
        labels = load_npy(path)
    else:
        path = cifar10_test_batch(cifar10_root)
        labels = load_cifar10_batch(path)[1]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a 1-d integer array of labels, found {labels.dtype} {labels.shape}")
    if len(labels) != 10_000:
        raise DataError(f"{path}: expected 10,000 CIFAR-10 test labels, found {len(labels)}")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: labels outside 0..9")
    return labels.astype(np.int64)


def _read_label_list(path: Path, n: int) -> np.ndarray:
    data = load_json(path)
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        raise DataError(f"{path}: expected a JSON list of integer labels")
    arr = np.asarray(data, dtype=np.int64)
    if len(arr) != n:
        raise DataError(f"{path}: {len(arr)} predictions, the test set has {n} images")
    if arr.size and (arr.min() < 0 or arr.max() > 9):
        raise DataError(f"{path}: labels outside 0..9")
    return arr


def import_cifar101(
    release: str | os.PathLike,
    store: str | os.PathLike | PredictionStore,
    *,
    cifar10_labels: str | os.PathLike | None = None,
    cifar10_root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import the CIFAR-10.1 release's top-1 predictions on CIFAR-10, CIFAR-10.1 v4 and v6."""
    release = _require_dir(Path(release), "CIFAR-10.1 release")
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report = ImportReport(CIFAR101_SOURCE)
    sets = {
        "cifar10-test": ("original_predictions", read_cifar10_test_labels(labels_npy=cifar10_labels, cifar10_root=cifar10_root)),
    }
    for v in ("v4", "v6"):
        path = release / "datasets" / f"cifar10.1_{v}_labels.npy"
        labels = load_npy(path)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path}: expected a 1-d integer array, found {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise DataError(f"{path}: labels outside 0..9")
        expected = TEST_SETS[f"cifar10.1-{v}"].num_images
        if len(labels) != expected:
            raise DataError(f"{path}: {len(labels)} labels, CIFAR-10.1 {v} has {expected}")
        sets[f"cifar10.1-{v}"] = (f"{v}_predictions", labels.astype(np.int64))

    for test_set, (folder_name, labels) in sets.items():
        store.put_labels(test_set, labels, num_classes=10, source=CIFAR101_SOURCE)
        folder = _require_dir(release / "model_predictions" / folder_name, f"CIFAR-10.1 predictions for {test_set}")
        files = sorted(folder.glob("*_predictions.json"))
        if not files:
            raise DataError(f"{folder}: no *_predictions.json files")
        for f in files:
            preds = _read_label_list(f, len(labels))
            model = f.name.removesuffix("_predictions.json")
            _put(store, report, overwrite, source=CIFAR101_SOURCE, model=model, test_set=test_set,
                 predictions=preds, meta={"release_file": f"model_predictions/{folder_name}/{f.name}"})
    return report


# ------------------------------------------------------------------------------------ published tables


def _counts_from_percent(pct: float, n: int, path: Path, what: str) -> int:
    """The count behind a published percentage (published tables give 3+ decimals, enough for n <= 50,000)."""
    if not 0.0 <= pct <= 100.0:
        raise DataError(f"{path}: {what}: accuracy {pct} outside 0..100")
    return int(round(pct * n / 100.0))


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def import_timm(
    imagenet_csv: str | os.PathLike,
    matched_frequency_csv: str | os.PathLike | None,
    store: str | os.PathLike | PredictionStore,
    *,
    overwrite: bool = False,
) -> ImportReport:
    """Import timm's published top-1/top-5 tables (accuracy-only rows, source ``timm``).

    Rows are keyed by ``model`` and ``img_size``; the store's model name is ``<model>@<img_size>``.
    Counts are recovered from the percentages with n = 50,000 (validation) and 10,000 (ImageNetV2).
    """
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report = ImportReport("timm")
    files = [(Path(imagenet_csv), "imagenet-val")]
    if matched_frequency_csv is not None:
        files.append((Path(matched_frequency_csv), "imagenetv2-matched-frequency"))
    for path, test_set in files:
        df = _read_csv(path, ["model", "img_size", "top1", "top5"])
        n = TEST_SETS[test_set].num_images
        keys = df["model"].astype(str) + "@" + df["img_size"].astype(str)
        dup = keys[keys.duplicated()]
        if len(dup):
            raise DataError(f"{path}: duplicate (model, img_size) rows, e.g. {dup.iloc[0]}")
        for line, (key, row) in enumerate(zip(keys, df.itertuples(index=False), strict=True), start=2):
            if pd.isna(row.top1):
                report.notes.append(f"{path.name} line {line}: {key} has no top-1; skipped")
                continue
            top1 = _counts_from_percent(float(row.top1), n, path, f"line {line} ({key})")
            top5 = None if pd.isna(row.top5) else _counts_from_percent(float(row.top5), n, path, f"line {line} ({key})")
            meta = {"published_file": path.name, "img_size": int(row.img_size)}
            for extra in ("crop_pct", "interpolation", "param_count"):
                if extra in df.columns and not pd.isna(getattr(row, extra)):
                    v = getattr(row, extra)
                    meta[extra] = v.item() if hasattr(v, "item") else v
            _put(store, report, overwrite, source="timm", model=key, test_set=test_set, n=n,
                 top1_correct=top1, top5_correct=top5, meta=meta)
    return report


def import_testbed(
    csv: str | os.PathLike,
    store: str | os.PathLike | PredictionStore,
    *,
    columns: dict[str, str] | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import imagenet-testbed's wide ``robustness_top1s.csv`` (percent; empty cells are skipped).

    ``columns`` maps testbed columns to our test-set names (default :data:`TESTBED_COLUMNS`).
    """
    path = Path(csv)
    columns = dict(TESTBED_COLUMNS if columns is None else columns)
    df = _read_csv(path, ["model"])
    present = {c: t for c, t in columns.items() if c in df.columns}
    if not present:
        raise DataError(f"{path}: none of the expected columns ({', '.join(sorted(columns))}) is present")
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report = ImportReport("testbed")
    missing = sorted(set(columns) - set(present))
    if missing:
        report.notes.append(f"columns not in {path.name}: {', '.join(missing)}")
    if df["model"].duplicated().any():
        raise DataError(f"{path}: duplicate model rows, e.g. {df['model'][df['model'].duplicated()].iloc[0]}")
    for line, row in enumerate(df.itertuples(index=False), start=2):
        model = str(row.model)
        for col, test_set in sorted(present.items()):
            value = df.at[line - 2, col]
            if pd.isna(value):
                continue
            n = TEST_SETS[test_set].num_images
            top1 = _counts_from_percent(float(value), n, path, f"line {line} ({model}, {col})")
            _put(store, report, overwrite, source="testbed", model=model, test_set=test_set, n=n,
                 top1_correct=top1, meta={"published_file": path.name, "published_column": col})
    return report
