"""The loader specs of the built-in datasets: :class:`DatasetSpec`, :data:`DATASETS` (CIFAR-10, CIFAR-10.1,
ImageNet, the ImageNetV2 variants and the distribution shifts ImageNet-A, -R, -Sketch and ObjectNet, with
their layouts, sources, checksums and orders), the class lists (:data:`CIFAR10_CLASSES`,
:func:`imagenet_wnids`) and :class:`CountMismatchWarning`. Re-exported by
:mod:`generalization.evaluator.datasets`.

A spec holds only how to find, check and label a local copy. What the test set *is* (title, number of
classes, label space, published image count, original, the ImageNetV2 release's dataset file name) lives
in its :data:`generalization.test_sets.CATALOG` entry, which the spec reads (:attr:`DatasetSpec.info`), so
the two cannot disagree. ``data_manifests/*.json`` are generated from both
(``python -m generalization list-datasets --write-manifests data_manifests``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..files import DataError
from ..sources import IMAGENETV2_RELEASE
from ..test_sets import CATALOG, TestSetInfo

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_WNID = re.compile(r"^n\d{8}$")
_VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TEST_BATCH_MD5 = "40351d587109b95175f43aff81a1287e"
CIFAR101_URL = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets/"
IMAGENETV2_HF_REPO = "vaishaal/ImageNetV2"

#: the loaders a spec can name (``DatasetSpec.loader``), dispatched by ``datasets.load_dataset``
LOADERS = ("cifar10-batch", "cifar10.1-npy", "imagenet", "class-folders")


class CountMismatchWarning(UserWarning):
    """A test set holds a different number of images than the published one (records are flagged)."""


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, check and label a local copy of one built-in test set.

    ``name`` is a :data:`generalization.test_sets.CATALOG` name; the test set's identity (title, classes,
    published count, release file) is read from that entry (:attr:`info`), never repeated here.
    """

    name: str
    loader: str  # one of LOADERS
    layouts: dict[str, str]
    label_rule: str
    order: str
    source_urls: tuple[str, ...]
    fingerprints: dict[str, str] = field(default_factory=dict)
    folder_names: tuple[str, ...] = ()  # sub-folders a download unpacks to (searched under --data-root)

    @property
    def info(self) -> TestSetInfo:
        """The test set's catalog entry (title, num_classes, num_images, original, label space, ...)."""
        return CATALOG[self.name]

    @property
    def title(self) -> str:
        return self.info.title

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def expected_count(self) -> int:
        """The published image count (the catalog's ``num_images``)."""
        return self.info.num_images

    @property
    def classes(self) -> str:
        """The label space (a :data:`generalization.test_sets.LABEL_SPACES` name)."""
        return self.info.label_space

    @property
    def release_json(self) -> str | None:
        """The ImageNetV2 release's ``data/datasets/<file>`` of this test set, None if it has none."""
        stem = self.info.name_in(IMAGENETV2_RELEASE)
        return f"{stem}.json" if stem else None


_V2 = "the ImageNetV2 release's dataset JSON order when given, else class index (numeric) then file name"
_V2_LAYOUTS = {
    "index-folders": "<root>/[<archive folder>/]<class index 0..999>/<image id>.jpeg (the Hugging Face archives)",
    "wnid-folders": "<root>/<wnid>/<image id>.jpeg",
}


def _v2(name: str, sha: str) -> DatasetSpec:
    """An ImageNetV2 variant: its archive on the Hugging Face Hub is named like the test set."""
    return DatasetSpec(
        name=name,
        loader="imagenet",
        layouts=_V2_LAYOUTS,
        label_rule="index-folders: the folder name is the class index (an integer, never string-sorted); "
        "wnid-folders: position of the wnid in the sorted 1,000 wnids; checked against the release JSON when given",
        order=_V2,
        source_urls=(
            f"https://huggingface.co/datasets/{IMAGENETV2_HF_REPO}/resolve/main/{name}.tar.gz",
            "https://github.com/modestyachts/ImageNetV2",
        ),
        fingerprints={"release_json_sha256": sha},
        folder_names=(f"{name}", f"{name}-format-val"),
    )


def _cifar101(v: str, sha: str) -> DatasetSpec:
    return DatasetSpec(
        name=f"cifar10.1-{v}",
        loader="cifar10.1-npy",
        layouts={"npy": f"<root>/[datasets/]cifar10.1_{v}_data.npy (N x 32 x 32 x 3 uint8) and cifar10.1_{v}_labels.npy"},
        label_rule=f"cifar10.1_{v}_labels.npy; class index = position in the 10 CIFAR-10 class names",
        order=f"the row order of cifar10.1_{v}_data.npy",
        source_urls=(CIFAR101_URL + f"cifar10.1_{v}_data.npy", CIFAR101_URL + f"cifar10.1_{v}_labels.npy"),
        fingerprints={"labels_sha256": sha},
    )


# ImageNet-A, ImageNet-R, ImageNet-Sketch and ObjectNet: users download them; labels are ImageNet class
# indices (0..999), so models with 1,000 outputs run unchanged. A/R and ObjectNet are scored on the model's
# outputs restricted to their classes (evaluator/scoring.py; the catalog's class subsets).
_WNID_RULE = "the ImageNet class index of the folder's wnid (position in the sorted 1,000 wnids)"
_SHIFT_ORDER = "class index (numeric), then file name"


def _shift(name: str, folders: tuple[str, ...], url: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        loader="class-folders",
        layouts={"wnid-folders": f"<root>/[{folders[0]}/]<wnid>/<image> (one folder per class of the test set)"},
        label_rule=_WNID_RULE,
        order=_SHIFT_ORDER,
        source_urls=(url,),
        folder_names=folders,
    )


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            name="cifar10-test",
            loader="cifar10-batch",
            layouts={
                "pickle": "<root>/cifar-10-batches-py/test_batch (dict: b'data' N x 3072 uint8 channel-major "
                "rows, b'labels', b'batch_label', b'filenames')"
            },
            label_rule="b'labels' of the batch; class index = position in the 10 CIFAR-10 class names",
            order="the official row order of test_batch",
            source_urls=(CIFAR10_URL,),
            fingerprints={"archive_md5": CIFAR10_ARCHIVE_MD5, "test_batch_md5": CIFAR10_TEST_BATCH_MD5},
        ),
        _cifar101("v4", "1f9544300ded199539b6662364ce7fe6c2e1ea9f87408f06db4b1a6184cffb18"),
        _cifar101("v6", "ae40beda001693674edc94d925ee8268cfe68905f8f9aff800c8dcdfcd6c9448"),
        DatasetSpec(
            name="imagenet-val",
            loader="imagenet",
            layouts={
                "flat": "<root>/[val/]ILSVRC2012_val_XXXXXXXX.JPEG (labels from the release JSON or the devkit)",
                "wnid-folders": "<root>/[val/]<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG",
            },
            label_rule="release JSON wnid, devkit ground truth (via meta.mat) or wnid folder; class index = "
            "position of the wnid in the sorted 1,000 wnids",
            order=f"the ImageNetV2 release's {CATALOG['imagenet-val'].name_in(IMAGENETV2_RELEASE)}.json order "
            "when given (grouped by class), else sorted by file name",
            source_urls=(
                "https://image-net.org/challenges/LSVRC/2012/",
                "https://github.com/modestyachts/ImageNetV2",
            ),
            fingerprints={
                "release_json_sha256": "c0f9da0fb7817e9707efedbc655d2b3f5ba31c201a3e13e37edcbd9076a81072"
            },
            folder_names=("val",),
        ),
        _v2("imagenetv2-matched-frequency", "ca1ebce4c2f450835a8640ed447304d3d4318647f3930d7ba752b12ee692728d"),
        _v2("imagenetv2-threshold0.7", "6a7d6f805762c653b624e49ff15a65dc94672cf4a9f7fcae7aa04fedc1591c41"),
        _v2("imagenetv2-top-images", "1740edd79b830431423096ab8401df6a145c89c09696ce2d926aa59ddbb0e7a9"),
        _shift("imagenet-a", ("imagenet-a",), "https://github.com/hendrycks/natural-adv-examples"),
        _shift("imagenet-r", ("imagenet-r",), "https://github.com/hendrycks/imagenet-r"),
        _shift("imagenet-sketch", ("sketch", "imagenet-sketch"), "https://github.com/HaohanWang/ImageNet-Sketch"),
        DatasetSpec(
            name="objectnet-1.0-beta",
            loader="class-folders",
            layouts={"objectnet-folders": "<root>/[objectnet-1.0/images/]<ObjectNet folder, e.g. alarm_clock>/<image>.png"},
            label_rule="the first ImageNet class its ObjectNet class maps to (imagenet-testbed's label maps); scored on "
            "the 125 mapped ImageNet classes, a prediction counts if it lies in the image's ObjectNet class. The "
            "testbed also crops a 2-pixel border from each ObjectNet image; this loader does not",
            order=_SHIFT_ORDER,
            source_urls=("https://objectnet.dev/",),
            folder_names=("objectnet-1.0/images", "objectnet-1.0", "images"),
        ),
    ]
}


def _check_specs(specs: dict[str, DatasetSpec]) -> None:
    """Every spec names a catalog test set and a known loader (run at import)."""
    for n, s in specs.items():
        if n not in CATALOG or s.loader not in LOADERS:
            raise ValueError(f"DATASETS[{n!r}]: not a test_sets.CATALOG name, or unknown loader {s.loader!r}")


_check_specs(DATASETS)


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


def _class_names(label_space: str) -> tuple[str, ...]:
    """The class names of a label space, in class-index order."""
    return CIFAR10_CLASSES if label_space == "cifar10" else imagenet_wnids()
