"""The test-set registry and its loaders.

Each built-in test set (:data:`DATASETS`) knows its layouts, label rule, class list, expected image count and
one fixed, documented image order; ``data_manifests/<name>.json`` is the same information as a small
human-readable file (:func:`manifest`). :func:`load_dataset` turns a local copy into an :class:`ImageSet`:
labels, image ids and either encoded image files or an already decoded uint8 array, in that fixed order.

Orders (the store refuses a second, different order for a test set, so these are fixed once and for all):

``cifar10-test``
    the row order of the official ``cifar-10-batches-py/test_batch``.
``cifar10.1-v4``, ``cifar10.1-v6``
    the row order of ``cifar10.1_v{4,6}_data.npy``.
``imagenet-val``, ``imagenetv2-*``
    the order of ``image_filenames`` in the ImageNetV2 release's dataset JSON when one is given (``--release``):
    the order of the release's predictions, so evaluated and released models share one store. Without it:
    ``imagenet-val`` sorted by file name (= ILSVRC2012 id order), ``imagenetv2-*`` by class index (numeric),
    then file name. Those orders differ from the release order; the store then refuses to mix the two.
manifest folders
    the order of the manifest's ``image_filenames``.

Class index for ImageNet = position of the wnid in the sorted list of the 1,000 wnids; an ImageNetV2 archive
folder ``0``...``999`` *is* the class index (compared as a number, never as a string).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import IMAGE_EXTENSIONS
from ..files import DataError, cifar10_test_batch, load_cifar10_batch, load_json, load_npy

__all__ = [
    "CIFAR10_CLASSES",
    "DatasetSpec",
    "DATASETS",
    "ImageSet",
    "CountMismatchWarning",
    "imagenet_wnids",
    "load_dataset",
    "load_manifest_dataset",
    "array_dataset",
    "manifest",
    "list_datasets",
    "verify_data",
    "VerifyReport",
    "download",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_WNID = re.compile(r"^n\d{8}$")
_VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TEST_BATCH_MD5 = "40351d587109b95175f43aff81a1287e"
CIFAR101_URL = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets/"
IMAGENETV2_HF_REPO = "vaishaal/ImageNetV2"


class CountMismatchWarning(UserWarning):
    """A test set holds a different number of images than the published one (records are flagged)."""


@dataclass(frozen=True)
class DatasetSpec:
    """One built-in test set: everything needed to find, check and label a local copy."""

    name: str
    title: str
    num_classes: int
    expected_count: int
    classes: str  # "cifar10" (the 10 names) or "imagenet-wnids" (sorted 1,000 wnids)
    layouts: dict[str, str]
    label_rule: str
    order: str
    source_urls: tuple[str, ...]
    fingerprints: dict[str, str] = field(default_factory=dict)
    release_json: str | None = None  # ImageNetV2 release: data/datasets/<release_json>
    folder_names: tuple[str, ...] = ()  # sub-folders a download unpacks to (searched under --data-root)


_V2 = "the ImageNetV2 release's dataset JSON order when given, else class index (numeric) then file name"
_V2_LAYOUTS = {
    "index-folders": "<root>/[<archive folder>/]<class index 0..999>/<image id>.jpeg (the Hugging Face archives)",
    "wnid-folders": "<root>/<wnid>/<image id>.jpeg",
}


def _v2(name: str, title: str, release_json: str, archive: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        title=title,
        num_classes=1000,
        expected_count=10_000,
        classes="imagenet-wnids",
        layouts=_V2_LAYOUTS,
        label_rule="index-folders: the folder name is the class index (an integer, never string-sorted); "
        "wnid-folders: position of the wnid in the sorted 1,000 wnids; checked against the release JSON when given",
        order=_V2,
        source_urls=(
            f"https://huggingface.co/datasets/{IMAGENETV2_HF_REPO}/resolve/main/{archive}.tar.gz",
            "https://github.com/modestyachts/ImageNetV2",
        ),
        release_json=release_json,
        folder_names=(f"{archive}", f"{archive}-format-val"),
    )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            name="cifar10-test",
            title="CIFAR-10 test",
            num_classes=10,
            expected_count=10_000,
            classes="cifar10",
            layouts={
                "pickle": "<root>/cifar-10-batches-py/test_batch (dict: b'data' N x 3072 uint8 channel-major "
                "rows, b'labels', b'batch_label', b'filenames')"
            },
            label_rule="b'labels' of the batch; class index = position in the 10 CIFAR-10 class names",
            order="the official row order of test_batch",
            source_urls=(CIFAR10_URL,),
            fingerprints={"archive_md5": CIFAR10_ARCHIVE_MD5, "test_batch_md5": CIFAR10_TEST_BATCH_MD5},
        ),
        *[
            DatasetSpec(
                name=f"cifar10.1-{v}",
                title=f"CIFAR-10.1 {v}",
                num_classes=10,
                expected_count=n,
                classes="cifar10",
                layouts={
                    "npy": f"<root>/[datasets/]cifar10.1_{v}_data.npy (N x 32 x 32 x 3 uint8) and "
                    f"cifar10.1_{v}_labels.npy"
                },
                label_rule=f"cifar10.1_{v}_labels.npy; class index = position in the 10 CIFAR-10 class names",
                order=f"the row order of cifar10.1_{v}_data.npy",
                source_urls=(
                    CIFAR101_URL + f"cifar10.1_{v}_data.npy",
                    CIFAR101_URL + f"cifar10.1_{v}_labels.npy",
                ),
                fingerprints={"labels_sha256": sha},
            )
            for v, n, sha in [
                ("v4", 2021, "1f9544300ded199539b6662364ce7fe6c2e1ea9f87408f06db4b1a6184cffb18"),
                ("v6", 2000, "ae40beda001693674edc94d925ee8268cfe68905f8f9aff800c8dcdfcd6c9448"),
            ]
        ],
        DatasetSpec(
            name="imagenet-val",
            title="ImageNet validation",
            num_classes=1000,
            expected_count=50_000,
            classes="imagenet-wnids",
            layouts={
                "flat": "<root>/[val/]ILSVRC2012_val_XXXXXXXX.JPEG (labels from the release JSON or the devkit)",
                "wnid-folders": "<root>/[val/]<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG",
            },
            label_rule="release JSON wnid, devkit ground truth (via meta.mat) or wnid folder; class index = "
            "position of the wnid in the sorted 1,000 wnids",
            order="the ImageNetV2 release's imagenet-validation-original.json order when given (grouped by class), "
            "else sorted by file name",
            source_urls=(
                "https://image-net.org/challenges/LSVRC/2012/",
                "https://github.com/modestyachts/ImageNetV2",
            ),
            fingerprints={
                "release_json_sha256": "c0f9da0fb7817e9707efedbc655d2b3f5ba31c201a3e13e37edcbd9076a81072"
            },
            release_json="imagenet-validation-original.json",
            folder_names=("val",),
        ),
        _v2(
            "imagenetv2-matched-frequency",
            "ImageNetV2 MatchedFrequency",
            "imagenetv2-b-33.json",
            "imagenetv2-matched-frequency",
        ),
        _v2(
            "imagenetv2-threshold0.7",
            "ImageNetV2 Threshold0.7",
            "imagenetv2-a-44.json",
            "imagenetv2-threshold0.7",
        ),
        _v2("imagenetv2-top-images", "ImageNetV2 TopImages", "imagenetv2-c-12.json", "imagenetv2-top-images"),
    ]
}
_RELEASE_SHA = {
    "imagenetv2-threshold0.7": "6a7d6f805762c653b624e49ff15a65dc94672cf4a9f7fcae7aa04fedc1591c41",
    "imagenetv2-matched-frequency": "ca1ebce4c2f450835a8640ed447304d3d4318647f3930d7ba752b12ee692728d",
    "imagenetv2-top-images": "1740edd79b830431423096ab8401df6a145c89c09696ce2d926aa59ddbb0e7a9",
}
for _n, _sha in _RELEASE_SHA.items():
    DATASETS[_n].fingerprints["release_json_sha256"] = _sha


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k wnids, sorted (class index = position); from the list timm ships."""
    import importlib.util

    spec = importlib.util.find_spec("timm")  # the file only: importing timm takes seconds
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the ImageNet class list comes with timm: pip install timm")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / "imagenet_synsets.txt"
    wnids = tuple(w.strip() for w in path.read_text().split() if w.strip())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise DataError(f"{path}: expected the 1,000 sorted ImageNet wnids")
    return wnids


def _class_names(classes: str) -> tuple[str, ...]:
    return CIFAR10_CLASSES if classes == "cifar10" else imagenet_wnids()


# ------------------------------------------------------------------------------------------- image sets


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
    seen: set[str] = set()
    twice = next((i for i in entries_ids if _stem(i) in seen or seen.add(_stem(i))), None)
    if twice is not None:  # one image scored twice (or against another's label)
        raise DataError(f"{json_path}: image id {twice!r} is listed twice")
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


def _check_manifest_fields(d: dict, path: Path) -> None:
    """Types of a manifest's optional fields (a wrong one is an error naming the field, not a crash)."""
    checks = {
        "classes": lambda v: isinstance(v, list) and v and all(isinstance(c, (str, int)) for c in v)
        and len(set(map(str, v))) == len(v),
        "num_classes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "expected_count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "name": lambda v: isinstance(v, str) and v.strip() != "" and not any(c in v for c in "/\\\0"),
    }
    for key, ok in checks.items():
        if d.get(key) is not None and not ok(d[key]):
            raise DataError(f"{path}: {key!r} is {str(d[key])[:40]!r}, not valid for a manifest")
    for i, (image_id, cls) in enumerate(d["image_filenames"]):
        if not isinstance(image_id, (str, int)) or isinstance(image_id, bool) or str(image_id).strip() == "":
            raise DataError(f"{path}: image_filenames[{i}]: image id {image_id!r} is not a string")
        if not isinstance(cls, (str, int)) or isinstance(cls, bool):
            raise DataError(f"{path}: image_filenames[{i}]: class {cls!r} is not a string or integer")


def load_manifest_dataset(
    root: str | os.PathLike, manifest_path: str | os.PathLike, *, name: str | None = None
) -> ImageSet:
    """Any folder of images plus a manifest: a JSON with ``image_filenames`` = ordered ``[image id, class]``
    (the ImageNetV2 release's format, which the sampler also writes, see docs/sampler.md).

    ``class`` is a wnid (class index = position in the sorted 1,000 wnids), an integer class index, or a name
    from the manifest's ``classes`` list (the label space, in the models' output order). Optional keys:
    ``name`` (the test set's name; default: the manifest's file name without ``.json``), ``original`` (the
    test set it replicates; ``null`` for an original test set), ``title``, ``num_classes``, ``classes``,
    ``expected_count``, ``image_files``.

    Files: ``image_files`` (a list parallel to ``image_filenames``, paths relative to ``root``) when the
    manifest has it (the sampler writes it); otherwise an id that is a relative path of a file under
    ``root`` is that file; otherwise ids are matched to files by file name without extension, anywhere
    under ``root`` (the ImageNetV2 archives), and every image file under ``root`` must be listed.

    A manifest that reuses a built-in test set's name with other contents is refused.
    """
    from ..test_sets import check_builtin_name

    root, manifest_path = Path(root), Path(manifest_path)
    d = load_json(manifest_path)
    entries = d.get("image_filenames") if isinstance(d, dict) else None
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, list) and len(e) == 2 for e in entries)
    ):
        raise DataError(f"{manifest_path}: expected a non-empty 'image_filenames' list of [image id, class]")
    _check_manifest_fields(d, manifest_path)
    classes = d.get("classes")
    first = entries[0][1]
    if classes is not None:
        if not isinstance(classes, list) or len(set(map(str, classes))) != len(classes):
            raise DataError(f"{manifest_path}: 'classes' must be a list of distinct class names")
        where = {str(c): i for i, c in enumerate(classes)}
        num_classes = len(classes)
    elif isinstance(first, str) and _WNID.match(first):
        where = {w: i for i, w in enumerate(imagenet_wnids())}
        num_classes = 1000
    else:
        where = None
        num_classes = int(d.get("num_classes", 0)) or None
    try:
        labels = np.array(
            [where[str(c)] if where is not None and not isinstance(c, int) else int(c) for _, c in entries],
            dtype=np.int64,
        )
    except (KeyError, ValueError) as e:
        raise DataError(f"{manifest_path}: unknown class {e.args[0]!r} (not in the manifest's 'classes')") from None
    num_classes = int(d.get("num_classes", num_classes or int(labels.max()) + 1))
    labels = _check_labels(labels, num_classes, manifest_path)
    ids = [str(i) for i, _ in entries]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DataError(f"{manifest_path}: image id(s) listed twice, e.g. {dup}")
    test_set = name or d.get("name") or manifest_path.name.removesuffix(".json")
    original = d.get("original")
    expected = d.get("expected_count")
    check_builtin_name(test_set, int(expected or len(ids)), num_classes, original, str(manifest_path))
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (the --data-root of {manifest_path.name})")
    listed = d.get("image_files")
    if listed is not None:
        if not isinstance(listed, list) or len(listed) != len(ids):
            raise DataError(f"{manifest_path}: 'image_files' must list one file per entry of 'image_filenames'")
        paths = [root / str(f) for f in listed]
    elif all((root / i).is_file() and Path(i).suffix.lower() in IMAGE_EXTENSIONS for i in ids):
        paths = [root / i for i in ids]
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        paths = _match_entries(ids, labels, files, root, manifest_path)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{manifest_path}: {len(missing)} listed image file(s) not found under {root} "
                        f"(e.g. {missing[:3]}); is --data-root the folder the manifest's paths are relative to?")
    flags: list[str] = []
    _check_count(test_set, len(paths), expected, manifest_path, False, flags)
    declared: dict[str, Any] = {
        "original": original,
        "title": d.get("title") or test_set,
        "manifest": manifest_path.name,
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
    }
    if classes is not None:
        declared["classes"] = [str(c) for c in classes]
    if expected is not None:
        declared["expected_count"] = int(expected)
    return ImageSet(
        test_set,
        num_classes,
        labels,
        ids,
        "manifest",
        f"manifest order ({manifest_path.name})",
        root,
        paths=paths,
        expected_count=expected,
        flags=flags,
        declared=declared,
    )


def array_dataset(
    images: str | os.PathLike | np.ndarray,
    labels: str | os.PathLike | np.ndarray,
    *,
    name: str,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    original: str | None = None,
    title: str | None = None,
) -> ImageSet:
    """Images already decoded (a uint8 ``(N, H, W, 3)`` RGB array or its ``.npy``, e.g. CIFAR-style
    ``cifar10.1_v6_data.npy``) and their labels (integers or ``.npy``) as a test set for
    :func:`generalization.evaluator.runner.evaluate`.

    ``classes`` (names in label order) or ``num_classes`` gives the label space; ``original`` the test set
    it replicates (``analyze`` pairs them). A built-in name with other contents is refused.
    """
    from ..test_sets import check_builtin_name

    where = Path(images) if not isinstance(images, np.ndarray) else Path(name)
    pixels = load_npy(images) if not isinstance(images, np.ndarray) else images
    lab = load_npy(labels) if not isinstance(labels, np.ndarray) else np.asarray(labels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise DataError(f"{where}: expected uint8 images of shape (N, H, W, 3), got {pixels.dtype} {pixels.shape}")
    if lab.shape != (len(pixels),):
        raise DataError(f"{labels if not isinstance(labels, np.ndarray) else name}: {lab.shape[0] if lab.ndim else 0} "
                        f"labels for {len(pixels)} images")
    k = len(classes) if classes is not None else num_classes
    if k is None:
        raise DataError(f"{name}: give classes (names in label order) or num_classes")
    lab = _check_labels(lab, int(k), where)
    check_builtin_name(name, len(lab), int(k), original, str(where))
    declared: dict[str, Any] = {"original": original, "title": title or name}
    if classes is not None:
        declared["classes"] = [str(c) for c in classes]
    return ImageSet(name, int(k), lab, [str(i) for i in range(len(lab))], "array", "array row order",
                    where.parent if not isinstance(images, np.ndarray) else Path("."),
                    pixels=np.ascontiguousarray(pixels), declared=declared)


def load_dataset(
    name: str,
    data_root: str | os.PathLike,
    *,
    release: str | os.PathLike | None = None,
    devkit: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    strict_count: bool = False,
) -> ImageSet:
    """Load a test set from a local copy.

    Parameters
    ----------
    name : str
        A built-in test set (:data:`DATASETS`), or any name together with ``manifest``; a path ending in
        ``.json`` is read as a manifest (its folder's images under ``data_root``).
    data_root : path
        The folder holding the copy (see each spec's ``layouts``).
    release : path, optional
        ImageNetV2 release clone (or one dataset JSON): fixes the order, the image ids and the labels of the
        ImageNet sets, and checks the files against it.
    devkit : path, optional
        ILSVRC2012 devkit, for the labels of a flat ``imagenet-val`` without the release.
    strict_count : bool
        Make an image count that differs from the published one an error. By default it is a
        :class:`CountMismatchWarning` and the test set (and its records) are flagged ``partial``.
    """
    if manifest is not None or (str(name).endswith(".json") and Path(name).is_file()):
        return load_manifest_dataset(data_root, manifest or name, name=None if manifest is None else name)
    if name not in DATASETS:
        raise DataError(f"unknown test set {name!r}; built-in: {', '.join(DATASETS)} (or pass a manifest)")
    if name == "cifar10-test":
        return load_cifar10_test(data_root, strict_count=strict_count)
    if name.startswith("cifar10.1-"):
        return load_cifar101(data_root, name.split("-")[-1], strict_count=strict_count)
    if name in _SHIFT_SPECS:
        return load_shift_dataset(name, data_root, strict_count=strict_count)
    return load_imagenet(name, data_root, release=release, devkit=devkit, strict_count=strict_count)


# ------------------------------------------------------------------------ distribution shifts (issue 18)
# ImageNet-A, ImageNet-R, ImageNet-Sketch and ObjectNet: users download them; labels are ImageNet class
# indices (0..999), so models with 1,000 outputs run unchanged. A/R and ObjectNet are scored on the model's
# outputs restricted to their classes (evaluator/scoring.py; the catalog's class subsets).

_SHIFT_SPECS = {
    "imagenet-a": ("ImageNet-A", 7_500, ("imagenet-a",), "https://github.com/hendrycks/natural-adv-examples"),
    "imagenet-r": ("ImageNet-R", 30_000, ("imagenet-r",), "https://github.com/hendrycks/imagenet-r"),
    "imagenet-sketch": ("ImageNet-Sketch", 50_889, ("sketch", "imagenet-sketch"), "https://github.com/HaohanWang/ImageNet-Sketch"),
    "objectnet-1.0-beta": ("ObjectNet 1.0 (the 113 classes that overlap ImageNet)", 18_514,
                           ("objectnet-1.0/images", "objectnet-1.0", "images"), "https://objectnet.dev/"),
}  # fmt: skip
for _n, (_title, _count, _folders, _url) in _SHIFT_SPECS.items():
    DATASETS[_n] = DatasetSpec(
        name=_n,
        title=_title,
        num_classes=1000,
        expected_count=_count,
        classes="imagenet-wnids",
        layouts={"objectnet-folders": "<root>/[objectnet-1.0/images/]<ObjectNet folder, e.g. alarm_clock>/<image>.png"}
        if _n.startswith("objectnet")
        else {"wnid-folders": f"<root>/[{_folders[0]}/]<wnid>/<image> (one folder per class of the test set)"},
        label_rule="the ImageNet class index of the folder's wnid (position in the sorted 1,000 wnids)"
        if not _n.startswith("objectnet")
        else "the first ImageNet class its ObjectNet class maps to (imagenet-testbed's label maps); scored on the "
        "125 mapped ImageNet classes, a prediction counts if it lies in the image's ObjectNet class. The testbed "
        "also crops a 2-pixel border from each ObjectNet image; this loader does not",
        order="class index (numeric), then file name",
        source_urls=(_url,),
        folder_names=_folders,
    )


def _shift_classes(name: str) -> dict[str, int]:
    """Folder name -> label of a shift's class folders."""
    from ..test_sets import class_subset
    from ..testbed_metadata import bundle

    if name.startswith("objectnet"):
        on = bundle()["objectnet"]
        return {f: on["objectnet_to_imagenet"][c][0] for f, c in on["folder_to_objectnet"].items()}
    wnids = imagenet_wnids()
    subset = class_subset(name)
    return {wnids[i]: i for i in (range(1000) if subset is None else subset)}


def load_shift_dataset(name: str, root: str | os.PathLike, *, strict_count: bool = False) -> ImageSet:
    """ImageNet-A, -R, -Sketch or ObjectNet from a folder of class folders (see their ``layouts``).

    Every class folder of the test set must be there (a missing or unknown one is a DataError naming it);
    ObjectNet's folders outside the 113 overlapping classes are left out (counted in the set's flags).
    """
    spec = DATASETS[name]
    root = _find_root(Path(root), spec)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found ({spec.title}: download it from {spec.source_urls[0]})")
    classes = _shift_classes(name)
    dirs = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    missing = sorted(set(classes) - set(dirs))
    extra = sorted(set(dirs) - set(classes))
    flags: list[str] = []
    if name.startswith("objectnet"):
        if extra:
            flags.append(f"{len(extra)} ObjectNet class folders outside the 113 overlapping classes left out")
        extra = []
    if missing or extra:
        parts = [f"{len(missing)} class folder(s) missing (e.g. {missing[:5]})"] if missing else []
        parts += [f"{len(extra)} unknown class folder(s) (e.g. {extra[:5]})"] if extra else []
        raise DataError(f"{root}: {spec.title}: " + "; ".join(parts))
    items = sorted((classes[d], f.name, f) for d in classes for f in _image_files(dirs[d]))
    if not items:
        raise DataError(f"{root}: no images found in the class folders of {spec.title}")
    paths = [f for _, _, f in items]
    labels = np.array([c for c, _, _ in items], dtype=np.int64)
    ids = [f"{f.parent.name}/{f.name}" for f in paths]
    _check_count(name, len(paths), spec.expected_count, root, strict_count, flags)
    layout = next(iter(spec.layouts))
    return ImageSet(name, 1000, labels, ids, layout, spec.order, root, paths=paths,
                    expected_count=spec.expected_count, flags=flags)  # fmt: skip


# ----------------------------------------------------------------------------------------- manifests


def manifest(name: str) -> dict[str, Any]:
    """The human-readable manifest of a built-in test set (what ``data_manifests/<name>.json`` holds)."""
    s = DATASETS[name]
    d: dict[str, Any] = {
        "name": s.name,
        "title": s.title,
        "source_urls": list(s.source_urls),
        "layouts": dict(s.layouts),
        "label_rule": s.label_rule,
        "order": s.order,
        "num_classes": s.num_classes,
        "classes": list(CIFAR10_CLASSES) if s.classes == "cifar10" else "the 1,000 ImageNet wnids, sorted",
        "expected_count": s.expected_count,
        "fingerprints": dict(s.fingerprints),
    }
    if s.release_json:
        d["release_json"] = f"ImageNetV2 release: data/datasets/{s.release_json}"
    return d


def list_datasets() -> Any:
    """The registry as a DataFrame (one row per built-in test set)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "name": s.name,
                "title": s.title,
                "classes": s.num_classes,
                "images": s.expected_count,
                "layouts": ", ".join(s.layouts),
                "order": s.order,
            }
            for s in DATASETS.values()
        ]
    )


# ------------------------------------------------------------------------------------------ verify


@dataclass
class VerifyReport:
    name: str
    root: Path
    ok: bool
    problems: list[str]
    facts: list[str]

    def summary(self) -> str:
        head = f"{self.name} at {self.root}: " + ("OK" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join([head] + [f"  - {p}" for p in self.problems] + [f"  . {f}" for f in self.facts])


def _file_hash(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_data(
    name: str,
    data_root: str | os.PathLike,
    *,
    release: str | os.PathLike | None = None,
    devkit: str | os.PathLike | None = None,
) -> VerifyReport:
    """Check a local copy of a built-in test set against its manifest; say exactly what differs.

    Checks the layout (missing/unknown class folders), the files against the release JSON when given
    (missing/extra/misplaced images), the image count and the published fingerprints (the official
    ``test_batch`` md5, the CIFAR-10.1 label files' sha256, the release JSON's sha256).
    """
    root = Path(data_root)
    spec = DATASETS.get(name)
    if spec is None:
        raise DataError(f"unknown test set {name!r}; built-in: {', '.join(DATASETS)}")
    problems: list[str] = []
    facts: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CountMismatchWarning)
            ds = load_dataset(name, root, release=release, devkit=devkit)
    except DataError as e:
        return VerifyReport(name, root, False, [str(e)], facts)
    facts.append(f"layout {ds.layout}, {len(ds):,} images, order: {ds.order}")
    if len(ds) != spec.expected_count:
        problems.append(f"{len(ds):,} images, the published set has {spec.expected_count:,}")
    if name == "cifar10-test":
        path = cifar10_test_batch(root)
        md5 = _file_hash(path, "md5")
        if md5 != CIFAR10_TEST_BATCH_MD5:
            problems.append(
                f"{path}: md5 {md5}, the official test_batch has {CIFAR10_TEST_BATCH_MD5} "
                "(not the official file, or modified)"
            )
    elif name.startswith("cifar10.1-"):
        v = name.split("-")[-1]
        folder = root if (root / f"cifar10.1_{v}_labels.npy").exists() else root / "datasets"
        path = folder / f"cifar10.1_{v}_labels.npy"
        sha = _file_hash(path, "sha256")
        if sha != spec.fingerprints["labels_sha256"]:
            problems.append(
                f"{path}: sha256 {sha} differs from the release's {spec.fingerprints['labels_sha256']}"
            )
    elif release is not None:
        rpath = Path(release)
        rpath = rpath / "data" / "datasets" / spec.release_json if rpath.is_dir() else rpath
        sha = _file_hash(rpath, "sha256")
        if sha != spec.fingerprints.get("release_json_sha256"):
            problems.append(
                f"{rpath}: sha256 {sha} is not the release's {spec.release_json} (wrong version?)"
            )
        else:
            facts.append(f"image ids checked against {rpath.name}")
    else:
        facts.append("no release JSON given: image ids not checked (pass --release)")
    return VerifyReport(name, root, not problems, problems, facts)


# ----------------------------------------------------------------------------------------- download


def download(name: str, data_root: str | os.PathLike) -> Path:  # pragma: no cover - needs the network
    """Download a built-in test set into ``data_root`` the standard way (checksummed where published).

    CIFAR-10 via torchvision's ``download_and_extract_archive`` (md5 checked); CIFAR-10.1 ``.npy`` files via
    ``download_url``; ImageNetV2 archives via ``huggingface_hub.hf_hub_download`` from ``vaishaal/ImageNetV2``.
    ImageNet validation cannot be downloaded without an account: get it from image-net.org.
    """
    from torchvision.datasets.utils import download_and_extract_archive, download_url

    root = Path(data_root)
    root.mkdir(parents=True, exist_ok=True)
    spec = DATASETS[name]
    if name == "cifar10-test":
        download_and_extract_archive(CIFAR10_URL, str(root), md5=CIFAR10_ARCHIVE_MD5)
    elif name.startswith("cifar10.1-"):
        for url in spec.source_urls:
            download_url(url, str(root))
    elif name.startswith("imagenetv2-"):
        import tarfile

        from huggingface_hub import hf_hub_download

        archive = Path(
            hf_hub_download(IMAGENETV2_HF_REPO, f"{spec.folder_names[0]}.tar.gz", repo_type="dataset")
        )
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    else:
        raise DataError(f"{name}: cannot be downloaded automatically; get it from {spec.source_urls[0]}")
    return root


# ------------------------------------------------------------------------------ official-format writers


def write_cifar10_batch(
    path: str | os.PathLike,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    filenames: list[str] | None = None,
    batch_label: str = "testing batch 1 of 1",
) -> Path:
    """Write images (N x 32 x 32 x 3 uint8, RGB) as a batch in the official CIFAR-10 python format: a pickled
    dict with ``b'data'`` (N x 3072 uint8, channel-major rows), ``b'labels'`` (list of int),
    ``b'batch_label'`` and ``b'filenames'`` (bytes). Written atomically."""
    import pickle

    from ..files import atomic_write_bytes

    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[1:] != (32, 32, 3) or pixels.dtype != np.uint8:
        raise DataError(f"{path}: expected N x 32 x 32 x 3 uint8 images, got {pixels.dtype} {pixels.shape}")
    n = len(pixels)
    names = filenames or [f"test_{i:05d}.png" for i in range(n)]
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": np.ascontiguousarray(pixels.transpose(0, 3, 1, 2).reshape(n, 3072)),
        b"filenames": [s.encode() for s in names],
    }
    return atomic_write_bytes(path, pickle.dumps(batch, protocol=2))


def assemble_cifar10_test(
    shared_data: str | os.PathLike, out_root: str | os.PathLike, n: int = 10_000
) -> Path:
    """Build ``<out_root>/cifar-10-batches-py/test_batch`` in the official format from the pieces in
    ``../shared/data`` (for tests and benchmarks; the official file is not available there).

    Rows 0..999 are the lossless official images (``cifar10-test-first1000``); rows 1000..n-1 are the JPEG
    (quality 75) copies of ``cifar10-test-jpeg75``, placed by the official labels: the k-th image of class c in
    the official order is ``test/<class name>/<k:04d>.jpg``. ``n`` <= 1000 gives a lossless prefix.
    """
    from PIL import Image

    shared = Path(shared_data)
    first = load_npy(shared / "cifar10-test-first1000" / "test_data_first1000.npy")
    labels = load_npy(shared / "cifar10-test-labels" / "cifar10_test_set_original_labels.npy").astype(
        np.int64
    )
    if n <= len(first):
        pixels = first[:n]
    else:
        pixels = np.empty((n, 32, 32, 3), dtype=np.uint8)
        pixels[: len(first)] = first
        seen = np.zeros(10, dtype=np.int64)
        for r in range(n):
            c = labels[r]
            k = seen[c]
            seen[c] += 1
            if r >= len(first):
                jpg = shared / "cifar10-test-jpeg75" / "test" / CIFAR10_CLASSES[c] / f"{k:04d}.jpg"
                with Image.open(jpg) as im:
                    pixels[r] = np.asarray(im.convert("RGB"))
    return write_cifar10_batch(Path(out_root) / "cifar-10-batches-py" / "test_batch", pixels, labels[:n])
