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

This module holds :func:`load_dataset`, the manifest, array and distribution-shift datasets, the manifests,
:func:`verify_data` and :func:`download`; the registry itself is in :mod:`.dataset_registry` and the
official-format loaders in :mod:`.image_sets` (both re-exported here).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import IMAGE_EXTENSIONS
from ..files import DataError, cifar10_test_batch, load_json, load_npy
from .dataset_registry import (
    _WNID,
    CIFAR10_ARCHIVE_MD5,
    CIFAR10_CLASSES,
    CIFAR10_TEST_BATCH_MD5,
    CIFAR10_URL,
    DATASETS,
    IMAGENETV2_HF_REPO,
    CountMismatchWarning,
    DatasetSpec,
    imagenet_wnids,
)
from .image_sets import (
    ImageSet,
    _check_count,
    _check_labels,
    _find_root,
    _image_files,
    _match_entries,
    load_cifar10_test,
    load_cifar101,
    load_imagenet,
)

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


# ----------------------------------------------------------------------------------- manifest datasets


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
    from ..files import check_unique_ids
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
    check_unique_ids(ids, manifest_path)
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
