"""Canonical test-set names, used everywhere (store, importers, evaluator, analysis).

Each new test set names the original it replicates, so the analysis knows which accuracies to pair.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TestSetInfo", "TEST_SETS", "ORIGINAL_TEST_SETS", "NEW_TEST_SETS", "original_of", "get_info"]


@dataclass(frozen=True)
class TestSetInfo:
    name: str
    num_classes: int
    num_images: int
    original: str | None  # the test set this one replicates; None for an original test set
    title: str


TEST_SETS: dict[str, TestSetInfo] = {
    t.name: t
    for t in [
        TestSetInfo("imagenet-val", 1000, 50_000, None, "ImageNet validation"),
        TestSetInfo("imagenetv2-matched-frequency", 1000, 10_000, "imagenet-val", "ImageNetV2 MatchedFrequency"),
        TestSetInfo("imagenetv2-threshold0.7", 1000, 10_000, "imagenet-val", "ImageNetV2 Threshold0.7"),
        TestSetInfo("imagenetv2-top-images", 1000, 10_000, "imagenet-val", "ImageNetV2 TopImages"),
        TestSetInfo("cifar10-test", 10, 10_000, None, "CIFAR-10 test"),
        TestSetInfo("cifar10.1-v4", 10, 2_021, "cifar10-test", "CIFAR-10.1 v4"),
        TestSetInfo("cifar10.1-v6", 10, 2_000, "cifar10-test", "CIFAR-10.1 v6"),
    ]
}

ORIGINAL_TEST_SETS = [n for n, t in TEST_SETS.items() if t.original is None]
NEW_TEST_SETS = [n for n, t in TEST_SETS.items() if t.original is not None]


def get_info(name: str) -> TestSetInfo | None:
    return TEST_SETS.get(name)


def original_of(name: str) -> str | None:
    t = TEST_SETS.get(name)
    return t.original if t else None
