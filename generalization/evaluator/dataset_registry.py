"""The registry of built-in datasets: :class:`DatasetSpec`, :data:`DATASETS` (CIFAR-10, CIFAR-10.1, ImageNet
and the ImageNetV2 variants, with their sources, checksums and expected counts), the class lists
(:data:`CIFAR10_CLASSES`, :func:`imagenet_wnids`) and :class:`CountMismatchWarning`. Moved out of
:mod:`generalization.evaluator.datasets` (which re-exports these names) to keep modules short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..files import DataError

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
