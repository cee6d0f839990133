"""Loading the built-in image sets in their official formats: :class:`ImageSet` (images, labels, ids), the
CIFAR-10 test batch and CIFAR-10.1 arrays (:func:`load_cifar10_test`, :func:`load_cifar101`) and ImageNet-
style folders matched against a release list (:func:`load_imagenet`, :func:`devkit_val_labels`), with count
and label checks. Moved out of :mod:`generalization.evaluator.datasets` (the registry and
:func:`load_dataset`, which re-exports these names) to keep modules short.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import IMAGE_EXTENSIONS
from ..files import DataError, check_unique_ids, cifar10_test_batch, load_cifar10_batch, load_json, load_npy
from .dataset_registry import (
    _VAL_NAME,
    _WNID,
    CIFAR10_URL,
    DATASETS,
    CountMismatchWarning,
    DatasetSpec,
    imagenet_wnids,
)


@dataclass
class ImageSet:
    """A loaded test set: labels and images in its fixed order.

    Exactly one of ``paths`` (encoded files, decoded by the evaluator) and ``pixels`` (N x H x W x 3 uint8,
    already decoded) is set.
    """

    name: str
    num_classes: int
    labels: np.ndarray
    image_ids: list[str] | None
    layout: str
    order: str
    root: Path
    paths: list[Path] | None = None
    pixels: np.ndarray | None = None
    expected_count: int | None = None
    flags: list[str] = field(default_factory=list)
    #: for a manifest test set: what the manifest declares (``original`` = the test set it replicates, or
    #: None for an original; ``title``; ``classes``; ``manifest_sha256``); empty for a built-in test set
    declared: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        return {
            "test_set": self.name,
            "n": len(self),
            "num_classes": self.num_classes,
            "layout": self.layout,
            "order": self.order,
            "root": str(self.root),
            "flags": list(self.flags),
            **self.declared,
        }


def _check_count(
    name: str, n: int, expected: int | None, where: Path, strict: bool, flags: list[str]
) -> None:
    if expected is None or n == expected:
        return
    msg = f"{where}: {n:,} images, the published {name} has {expected:,}"
    if strict:
        raise DataError(msg)
    warnings.warn(
        msg + "; the records are flagged (not comparable with published accuracies)",
        CountMismatchWarning,
        stacklevel=3,
    )
    flags.append(f"partial test set: {n} of {expected} images")


def _check_labels(labels: np.ndarray, num_classes: int, where: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: expected a 1-d integer array of labels, found {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{where}: labels outside 0..{num_classes - 1}")
    return labels.astype(np.int64)


def load_cifar10_test(root: str | os.PathLike, *, strict_count: bool = False) -> ImageSet:
    """``<root>/cifar-10-batches-py/test_batch`` (or ``<root>/test_batch``), read without executing code."""
    root = Path(root)
    path = cifar10_test_batch(root)
    if not path.exists():
        raise DataError(
            f"{path}: not found (expected the official CIFAR-10 python test batch; "
            f"download {CIFAR10_URL} and unpack it under {root})"
        )
    pixels, labels = load_cifar10_batch(path)
    flags: list[str] = []
    spec = DATASETS["cifar10-test"]
    _check_count(spec.name, len(pixels), spec.expected_count, path, strict_count, flags)
    return ImageSet(
        spec.name,
        10,
        labels,
        None,
        "pickle",
        spec.order,
        root,
        pixels=pixels,
        expected_count=spec.expected_count,
        flags=flags,
    )


def load_cifar101(root: str | os.PathLike, version: str, *, strict_count: bool = False) -> ImageSet:
    """``cifar10.1_{version}_data.npy`` and ``_labels.npy`` under ``root`` or ``root/datasets``."""
    root = Path(root)
    spec = DATASETS[f"cifar10.1-{version}"]
    folder = root if (root / f"cifar10.1_{version}_data.npy").exists() else root / "datasets"
    data_path = folder / f"cifar10.1_{version}_data.npy"
    labels_path = folder / f"cifar10.1_{version}_labels.npy"
    data = load_npy(data_path)
    labels = _check_labels(load_npy(labels_path), 10, labels_path)
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or data.dtype != np.uint8:
        raise DataError(
            f"{data_path}: expected an N x 32 x 32 x 3 uint8 array, found {data.dtype} {data.shape}"
        )
    if len(data) != len(labels):
        raise DataError(f"{data_path}: {len(data)} images but {labels_path.name} has {len(labels)} labels")
    other = {2021: "v4", 2000: "v6"}.get(len(data))
    if other is not None and other != version:
        raise DataError(
            f"{data_path}: {len(data):,} images, which is CIFAR-10.1 {other}, not {version} (wrong version)"
        )
    flags: list[str] = []
    _check_count(spec.name, len(data), spec.expected_count, data_path, strict_count, flags)
    return ImageSet(
        spec.name,
        10,
        labels,
        None,
        "npy",
        spec.order,
        root,
        pixels=np.ascontiguousarray(data),
        expected_count=spec.expected_count,
        flags=flags,
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _stem(image_id: str) -> str:
    p = Path(image_id)
    return p.stem if p.suffix.lower() in IMAGE_EXTENSIONS else p.name


def _find_root(root: Path, spec: DatasetSpec | None) -> Path:
    """The folder that holds the class folders or files: ``root`` or one of the spec's known sub-folders."""
    if spec is not None:
        for sub in spec.folder_names:
            if (root / sub).is_dir():
                return root / sub
    return root


def index_folder_class(folder_name: str) -> int | None:
    """Class index of an ImageNetV2 archive folder: the folder name read as an integer (never a string sort)."""
    return int(folder_name) if folder_name.isdigit() else None


def _scan_class_folders(root: Path, num_classes: int) -> tuple[str, dict[int, list[Path]]]:
    """Detect the layout of ``root`` and list its images per class index.

    Returns ``(layout, {class index: sorted files})``; ``layout`` is ``index-folders``, ``wnid-folders`` or
    ``flat``. Missing or unknown class folders raise :class:`DataError` naming them.
    """
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        return "flat", {}
    names = [d.name for d in dirs]
    if all(n.isdigit() for n in names):
        layout, classes = "index-folders", {d.name: index_folder_class(d.name) for d in dirs}
        expected = {str(i) for i in range(num_classes)}
    elif all(_WNID.match(n) for n in names):
        wnids = imagenet_wnids()
        where = {w: i for i, w in enumerate(wnids)}
        layout, classes = "wnid-folders", {d.name: where.get(d.name) for d in dirs}
        expected = set(wnids)
    else:
        odd = [n for n in names if not (n.isdigit() or _WNID.match(n))][:5]
        raise DataError(
            f"{root}: wrong layout: class folders must all be class indices 0..{num_classes - 1} "
            f"or all ImageNet wnids; found e.g. {odd}"
        )
    missing = sorted(expected - set(names), key=lambda s: (len(s), s))
    extra = sorted(n for n, c in classes.items() if c is None or c >= num_classes or n not in expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} class folder(s) missing (e.g. {missing[:5]})")
        if extra:
            parts.append(f"{len(extra)} unknown class folder(s) (e.g. {extra[:5]})")
        raise DataError(f"{root}: {layout} layout: " + "; ".join(parts))
    return layout, {classes[d.name]: _image_files(d) for d in dirs}


def _read_release(release: str | os.PathLike, spec: DatasetSpec) -> tuple[Path, list[tuple[str, str]]]:
    """The ``image_filenames`` of a release dataset JSON: a JSON file, or a release clone's root."""
    path = Path(release)
    if path.is_dir():
        path = path / "data" / "datasets" / spec.release_json
    d = load_json(path)
    entries = d.get("image_filenames") if isinstance(d, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 2 for e in entries):
        raise DataError(f"{path}: expected 'image_filenames' = a list of [image id, wnid]")
    return path, [(str(i), str(w)) for i, w in entries]


def _wnid_labels(entries: list[tuple[str, str]], where: Path) -> np.ndarray:
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    try:
        return np.array([index[w] for _, w in entries], dtype=np.int64)
    except KeyError as e:
        raise DataError(f"{where}: unknown wnid {e.args[0]!r}") from None


def _match_entries(
    entries_ids: list[str],
    labels: np.ndarray,
    files: dict[int, list[Path]] | list[Path],
    where: Path,
    json_path: Path,
) -> list[Path]:
    """Find each listed image id among the files; folder classes must agree with the listed labels."""
    check_unique_ids(entries_ids, json_path, key=_stem)  # ids are matched to files by stem
    by_stem: dict[str, tuple[Path, int | None]] = {}
    items = (
        [(f, None) for f in files]
        if isinstance(files, list)
        else [(f, c) for c, fs in sorted(files.items()) for f in fs]
    )
    for f, c in items:
        key = f.stem
        if key in by_stem:
            raise DataError(f"{where}: two files for image id {key!r}: {by_stem[key][0]} and {f}")
        by_stem[key] = (f, c)
    paths, missing, wrong = [], [], []
    for image_id, label in zip(entries_ids, labels, strict=True):
        hit = by_stem.get(_stem(image_id))
        if hit is None:
            missing.append(image_id)
            continue
        if hit[1] is not None and hit[1] != label:
            wrong.append(f"{hit[0]} (folder class {hit[1]}, listed class {label})")
        paths.append(hit[0])
    wanted = {_stem(i) for i in entries_ids}
    extra = sorted(str(f) for k, (f, _) in by_stem.items() if k not in wanted)
    if missing or wrong or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} listed image(s) missing (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} extra file(s) not in the list (e.g. {extra[:3]})")
        if wrong:
            parts.append(
                f"{len(wrong)} image(s) in the wrong class folder (e.g. {wrong[:2]}); a class-folder "
                "order that is not the class index (e.g. a string sort of 0..999) looks like this"
            )
        raise DataError(f"{where} vs {json_path}: " + "; ".join(parts))
    return paths


def load_imagenet(
    name: str,
    root: str | os.PathLike,
    *,
    release: str | os.PathLike | None = None,
    devkit: str | os.PathLike | None = None,
    strict_count: bool = False,
) -> ImageSet:
    """``imagenet-val`` or an ``imagenetv2-*`` set from a folder (see :data:`DATASETS` for the layouts)."""
    spec = DATASETS[name]
    root = _find_root(Path(root), spec)
    layout, per_class = _scan_class_folders(root, 1000)
    flags: list[str] = []
    if layout == "flat":
        if name != "imagenet-val":
            raise DataError(f"{root}: wrong layout: {name} needs class folders (0..999 or wnids), found none")
        files = _image_files(root)
        if not files:
            raise DataError(f"{root}: no images found")
        bad = [f.name for f in files if not _VAL_NAME.match(f.name)]
        if bad:
            raise DataError(
                f"{root}: flat layout expects ILSVRC2012_val_XXXXXXXX.JPEG files; found e.g. {bad[:3]}"
            )
    if release is not None:
        json_path, entries = _read_release(release, spec)
        labels = _wnid_labels(entries, json_path)
        ids = [i for i, _ in entries]
        paths = _match_entries(ids, labels, files if layout == "flat" else per_class, root, json_path)
        order = f"release JSON order ({json_path.name})"
    elif layout == "flat":
        if devkit is None:
            raise DataError(
                f"{root}: flat imagenet-val needs labels: pass the ImageNetV2 release (--release) "
                "or the ILSVRC2012 devkit (--devkit)"
            )
        truth = devkit_val_labels(devkit)
        paths = files
        try:
            labels = np.array([truth[int(f.name[15:23])] for f in files], dtype=np.int64)
        except KeyError as e:
            raise DataError(f"{devkit}: no ground truth for validation image {e.args[0]}") from None
        ids = [f.name for f in files]
        order = "sorted by file name"
    else:
        items = sorted(
            ((c, f) for c, fs in per_class.items() for f in fs),
            key=(lambda t: t[1].name) if name == "imagenet-val" else (lambda t: (t[0], t[1].name)),
        )
        paths = [f for _, f in items]
        labels = np.array([c for c, _ in items], dtype=np.int64)
        ids = [f.name if name == "imagenet-val" else f.stem for f in paths]
        order = "sorted by file name" if name == "imagenet-val" else "class index (numeric), then file name"
    _check_count(name, len(paths), spec.expected_count, root, strict_count, flags)
    return ImageSet(
        name,
        1000,
        labels,
        ids,
        layout,
        order,
        root,
        paths=paths,
        expected_count=spec.expected_count,
        flags=flags,
    )


def devkit_val_labels(devkit: str | os.PathLike) -> dict[int, int]:
    """ILSVRC2012 devkit ground truth: validation image number (1..50,000) -> class index (sorted wnids).

    Reads ``data/meta.mat`` (ILSVRC2012_ID -> wnid) and ``data/ILSVRC2012_validation_ground_truth.txt``.
    """
    from scipy.io import loadmat

    devkit = Path(devkit)
    meta_path = devkit / "data" / "meta.mat"
    truth_path = devkit / "data" / "ILSVRC2012_validation_ground_truth.txt"
    if not meta_path.is_file() or not truth_path.is_file():
        raise DataError(
            f"{devkit}: not an ILSVRC2012 devkit (needs data/meta.mat and "
            "data/ILSVRC2012_validation_ground_truth.txt)"
        )
    synsets = loadmat(meta_path, squeeze_me=True)["synsets"]
    id_to_wnid = {int(s[0]): str(s[1]) for s in synsets if int(s[4]) == 0}  # leaf classes: num_children == 0
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    ilsvrc_ids = [int(v) for v in truth_path.read_text().split()]
    return {k + 1: index[id_to_wnid[i]] for k, i in enumerate(ilsvrc_ids)}
