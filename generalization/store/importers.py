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
    any of timm's result tables (``results-imagenet.csv``, ``-imagenetv2-matched-frequency``, ``-imagenet-a``,
    ``-imagenet-a-clean``, ``-imagenet-r``, ``-imagenet-r-clean``, ``-sketch``, ``-imagenet-real``; see
    :data:`TIMM_FILES`) and ``model_metadata-in1k.csv`` (model types). Accuracy only; one model per ``model``
    + ``img_size``, stored as ``<model>@<img_size>``; written in bulk (``store/tables.py``).
``testbed``
    imagenet-testbed's wide ``robustness_top1s.csv`` (percent, one column per evaluation setting; every
    column by default, see :data:`TESTBED_SETTINGS`), written in bulk, with the testbed's model types.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import sources
from ..files import DataError, check_unique_ids, cifar10_test_batch, load_cifar10_batch, load_json, load_npy
from ..model_types import read_timm_metadata, testbed_model_type, timm_model_type
from ..test_sets import CATALOG, TEST_SETS, source_map
from ..testbed_metadata import TESTBED_TYPE_TO_MODEL_TYPE, parse_model_types
from .records import PredictionStore
from .tables import put_accuracy_rows

__all__ = [
    "ImportReport",
    "IMAGENETV2_DATASETS",
    "TESTBED_COLUMNS",
    "TESTBED_SETTINGS",
    "TIMM_FILES",
    "import_imagenetv2",
    "import_cifar101",
    "import_timm",
    "import_timm_tables",
    "import_testbed",
    "timm_test_set",
    "read_cifar10_test_labels",
    "suspect_reason",
    "rank_order_defect",
]

IMAGENETV2_SOURCE = sources.IMAGENETV2_RELEASE
CIFAR101_SOURCE = sources.CIFAR101_RELEASE

#: release dataset file -> our test-set name (from the catalog's source names)
IMAGENETV2_DATASETS = source_map(IMAGENETV2_SOURCE)


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
    check_unique_ids([i for i, _ in entries], path)
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
# (timm's result tables and imagenet-testbed's robustness_top1s.csv -> the store's bulk tables, tables.py)


def _counts_from_percent(pct: float, n: int, path: Path, what: str) -> int:
    """The count behind a published percentage (published tables give 3+ decimals, enough for n <= 50,000)."""
    if not 0.0 <= pct <= 100.0:
        raise DataError(f"{path}: {what}: accuracy {pct} outside 0..100")
    return int(round(pct * n / 100.0))


def _read_csv(path: Path, required: list[str], **kw) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, **kw)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _numeric(df: pd.DataFrame, cols: list[str], path: Path, *, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    """Columns of text cells as a 2-D float array (NaN where empty); a non-number (``abc``, ``85.1%``) or a
    value outside lo..hi is a DataError naming the file, line and column. One vectorized pass over all
    cells (the full testbed table has 72,000)."""
    text = np.char.strip(df[cols].to_numpy(dtype=str))
    empty = text == ""
    flat = pd.to_numeric(pd.Series(np.where(empty, "nan", text).ravel()), errors="coerce").to_numpy(dtype=float)
    values = flat.reshape(text.shape)
    for mask, what in (((~empty) & np.isnan(values), "is not a number"),
                       (~np.isnan(values) & ((values < lo) | (values > hi)), f"is outside {lo:g}..{hi:g}")):  # fmt: skip
        if mask.any():
            r, c = np.argwhere(mask)[0]
            raise DataError(f"{path}: line {r + 2}, column {cols[c]}: {df[cols[c]].iloc[r]!r} {what}")
    return values


def _models(df: pd.DataFrame, path: Path) -> pd.Series:
    models = df["model"].astype(str).str.strip()
    if (models == "").any():
        i = int(np.flatnonzero((models == "").to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}, column model: empty model name")
    return models


def _counts(pct: pd.Series, n: pd.Series | int) -> pd.Series:
    return (pct * n / 100.0).round().astype("Int64")


#: timm results file (``results-<kind>.csv``) -> our test-set name (from the catalog's source names). The
#: ``-clean`` tables are ImageNet validation restricted to ImageNet-A's / -R's 200 classes: the originals those
#: shifts are compared against.
TIMM_FILES = source_map(sources.TIMM)

TIMM_METADATA = "model_metadata-in1k.csv"


def timm_test_set(path: str | os.PathLike) -> str:
    """The test set of a timm results file, from its name (``results-imagenet-a.csv`` -> ``imagenet-a``)."""
    name = Path(path).name
    kind = name.removeprefix("results-").removesuffix(".csv")
    if not name.startswith("results-") or kind not in TIMM_FILES:
        known = ", ".join(f"results-{k}.csv" for k in TIMM_FILES)
        raise DataError(f"{path}: not one of timm's result tables (known: {known}, and {TIMM_METADATA})")
    return TIMM_FILES[kind]


def _timm_rows(path: Path, test_set: str, metadata: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    df = _read_csv(path, ["model", "img_size", "top1", "top5"], dtype=str, keep_default_na=False)
    models = _models(df, path)
    size_text = df["img_size"].astype(str).str.strip()
    bad = ~size_text.str.fullmatch(r"[0-9]+")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}, column img_size: {df['img_size'].iloc[i]!r} is not an integer")
    keys = models + "@" + size_text.astype(int).astype(str)
    dup = keys.duplicated()
    if dup.any():
        raise DataError(f"{path}: duplicate (model, img_size) rows, e.g. {keys[dup].iloc[0]}")
    top1, top5 = (pd.Series(v, index=df.index) for v in _numeric(df, ["top1", "top5"], path).T)
    below = top5.notna() & top1.notna() & (top5 < top1 - 1e-9)
    if below.any():
        i = int(np.flatnonzero(below.to_numpy())[0])
        raise DataError(f"{path}: line {i + 2}, columns top1/top5: top-5 {top5.iloc[i]:g} is below top-1 {top1.iloc[i]:g}")
    notes = [f"{path.name} line {i + 2}: {keys.iloc[i]} has no top-1; skipped" for i in np.flatnonzero(top1.isna().to_numpy())]
    n = CATALOG[test_set].num_images
    types = [timm_model_type(m, metadata) for m in models]
    rows = pd.DataFrame({
        "model": keys, "test_set": test_set, "n": n, "top1_correct": _counts(top1, n), "top5_correct": _counts(top5, n),
        "model_type": [t for t, _ in types], "model_type_detail": [d for _, d in types],
        "published_file": path.name, "img_size": size_text.astype(int),
    })  # fmt: skip
    for extra in ("crop_pct", "interpolation", "param_count"):
        if extra in df.columns:
            rows[extra] = df[extra].astype(str).str.strip()
    return rows[top1.notna().to_numpy()], notes


def import_timm_tables(
    files: list[str | os.PathLike | tuple[str | os.PathLike, str]],
    store: str | os.PathLike | PredictionStore,
    *,
    metadata: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import any of timm's result tables (accuracy-only rows, source ``timm``) in one bulk write.

    Each file's test set comes from its name (:data:`TIMM_FILES`) unless given as ``(path, test_set)``;
    ``model_metadata-in1k.csv`` among ``files`` (or ``metadata``) gives the model types of untagged names.
    Rows are keyed by ``model`` and ``img_size`` (store name ``<model>@<img_size>``); counts are recovered
    from the percentages with the test set's published size (:data:`generalization.test_sets.CATALOG`).
    Cells are validated (numbers in 0..100, top-5 >= top-1, integer img_size, non-empty model name).
    """
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report = ImportReport(sources.TIMM)
    tables, meta_paths = [], [] if metadata is None else [Path(metadata)]
    for f in files:
        path, test_set = (Path(f[0]), f[1]) if isinstance(f, tuple) else (Path(f), None)
        if test_set is None and path.name.startswith("model_metadata"):
            meta_paths.append(path)
            continue
        if test_set is not None and test_set not in CATALOG:
            raise DataError(f"{path}: unknown test set {test_set!r}")
        tables.append((path, test_set or timm_test_set(path)))
    seen = [t for _, t in tables]
    if len(set(seen)) != len(seen):
        dup = sorted({t for t in seen if seen.count(t) > 1})
        raise DataError(f"more than one timm file for test set(s) {', '.join(dup)}")
    meta: dict[str, str] = {}
    for p in meta_paths:
        meta.update(read_timm_metadata(p))
    frames = []
    for path, test_set in tables:
        rows, notes = _timm_rows(path, test_set, meta)
        frames.append(rows)
        report.notes += notes
    if frames:
        report.written, report.unchanged = put_accuracy_rows(store, sources.TIMM, pd.concat(frames, ignore_index=True),
                                                             overwrite=overwrite)  # fmt: skip
    return report


def import_timm(
    imagenet_csv: str | os.PathLike,
    matched_frequency_csv: str | os.PathLike | None,
    store: str | os.PathLike | PredictionStore,
    *,
    overwrite: bool = False,
) -> ImportReport:
    """timm's ``results-imagenet.csv`` and (optionally) ``results-imagenetv2-matched-frequency.csv``, whatever
    their file names (see :func:`import_timm_tables` for any of timm's tables)."""
    files: list = [(imagenet_csv, "imagenet-val")]
    if matched_frequency_csv is not None:
        files.append((matched_frequency_csv, "imagenetv2-matched-frequency"))
    return import_timm_tables(files, store, overwrite=overwrite)


#: every imagenet-testbed column (evaluation setting) -> our test-set name (from the catalog's source names).
#: The testbed evaluates ImageNetV2 twice: its ``-format-val`` columns (re-encoded like validation, what its
#: papers report) are our ``imagenetv2-*`` names, the as-released JPEGs our ``imagenetv2-*-as-released``.
TESTBED_SETTINGS = source_map(sources.TESTBED)

#: the columns of the paper's test sets (what ``reproduce`` needed before every column was imported)
TESTBED_COLUMNS = {c: t for c, t in TESTBED_SETTINGS.items() if t in TEST_SETS}


def _known_testbed_columns() -> str:
    """The known columns, ImageNet-C's 185 written as one pattern."""
    plain = sorted(c for c in TESTBED_SETTINGS if not c.startswith("imagenet-c."))
    return ", ".join(plain) + ", imagenet-c.<corruption>.<1..5>_{in-memory,on-disk}"


def import_testbed(
    csv: str | os.PathLike,
    store: str | os.PathLike | PredictionStore,
    *,
    columns: list[str] | dict[str, str] | None = None,
    model_types: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import imagenet-testbed's wide ``robustness_top1s.csv`` (percent; empty cells are skipped) in one
    bulk write.

    ``columns``: None imports every known column (:data:`TESTBED_SETTINGS`; unknown columns are skipped
    with a note); a list of testbed columns imports those (an unknown one is a DataError naming the known
    ones); a dict maps testbed columns to test-set names. ``model_types``: the testbed's
    ``plotting/model_types.py`` (parsed as data) instead of the shipped copy.
    """
    path = Path(csv)
    df = _read_csv(path, ["model"], dtype=str, keep_default_na=False)
    cols_in_file = [c for c in df.columns if c != "model"]
    report = ImportReport(sources.TESTBED)
    if columns is None:
        present = {c: TESTBED_SETTINGS[c] for c in cols_in_file if c in TESTBED_SETTINGS}
        unknown = [c for c in cols_in_file if c not in TESTBED_SETTINGS]
        if unknown:
            report.notes.append(f"columns not in the catalog, skipped: {', '.join(unknown)}")
    else:
        wanted = dict(columns) if isinstance(columns, dict) else {c: TESTBED_SETTINGS.get(c) for c in columns}
        bad = [c for c, t in wanted.items() if t is None or t not in CATALOG]
        if bad:
            raise DataError(f"{path}: unknown testbed column(s) {', '.join(bad)}; known: {_known_testbed_columns()}")
        missing = [c for c in wanted if c not in df.columns]
        if missing and len(missing) == len(wanted):
            raise DataError(f"{path}: none of the requested columns ({', '.join(sorted(wanted))}) is present")
        if missing:
            report.notes.append(f"columns not in {path.name}: {', '.join(sorted(missing))}")
        present = {c: t for c, t in wanted.items() if c in df.columns}
    if not present:
        raise DataError(f"{path}: none of the known testbed columns is present (known: {_known_testbed_columns()})")
    models = _models(df, path)
    if models.duplicated().any():
        raise DataError(f"{path}: duplicate model rows, e.g. {models[models.duplicated()].iloc[0]}")
    types = parse_model_types(model_types) if model_types is not None else None
    cols = sorted(present)
    pct = _numeric(df, cols, path)  # models x columns
    r, c = np.nonzero(~np.isnan(pct))
    order = np.lexsort((r, c))  # column by column, models in file order
    r, c = r[order], c[order]
    test_sets = np.array([present[x] for x in cols], dtype=object)
    n = np.array([CATALOG[present[x]].num_images for x in cols], dtype=np.int64)
    rows = pd.DataFrame({"model": models.to_numpy()[r], "test_set": test_sets[c], "n": n[c],
                         "top1_correct": np.rint(pct[r, c] * n[c] / 100.0).astype(np.int64),
                         "published_column": np.array(cols, dtype=object)[c]})  # fmt: skip
    lookup = {}
    for m in rows["model"].unique():
        if types is not None:
            t = types.get(m, "")
            lookup[m] = (TESTBED_TYPE_TO_MODEL_TYPE[t], t) if t else ("", "")
        else:
            lookup[m] = testbed_model_type(m)
    rows["model_type"] = rows["model"].map(lambda m: lookup[m][0])
    rows["model_type_detail"] = rows["model"].map(lambda m: lookup[m][1])
    rows["published_file"] = path.name
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    report.written, report.unchanged = put_accuracy_rows(store, sources.TESTBED, rows, overwrite=overwrite)
    return report
