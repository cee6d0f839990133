"""Canonical test-set names, used everywhere (store, importers, evaluator, analysis).

Each new test set names the original it replicates, so the analysis knows which accuracies to pair.
Test sets built with the sampler are *declared* (:func:`declare`): their manifest (and every store record
evaluated on them) names the original, so :func:`pairs` finds them next to the built-in pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TestSetInfo", "TEST_SETS", "ORIGINAL_TEST_SETS", "NEW_TEST_SETS", "original_of", "get_info", "title_of",
           "declare", "declared", "declare_from_records", "check_builtin_name", "pairs"]


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


#: test sets declared by manifests / store records in this process (name -> info); never a built-in name
_DECLARED: dict[str, TestSetInfo] = {}


def get_info(name: str) -> TestSetInfo | None:
    return TEST_SETS.get(name) or _DECLARED.get(name)


def original_of(name: str) -> str | None:
    t = get_info(name)
    return t.original if t else None


def title_of(name: str) -> str:
    """The display title of a test set (its name when it is not known)."""
    t = get_info(name)
    return t.title if t else name


def check_builtin_name(name: str, num_images: int, num_classes: int, original: str | None, where: str) -> None:
    """Refuse a user test set that reuses a built-in name with other contents (raises ``DataError``).

    A manifest called ``cifar10-test`` holding 1,000 images would otherwise be merged with the release's
    10,000-image rows of the real ``cifar10-test``.
    """
    from .files import DataError

    b = TEST_SETS.get(name)
    if b is None:
        return
    diffs = []
    if num_images != b.num_images:
        diffs.append(f"{num_images:,} images, the built-in has {b.num_images:,}")
    if num_classes != b.num_classes:
        diffs.append(f"{num_classes} classes, the built-in has {b.num_classes}")
    if original is not None and original != b.original:
        diffs.append(f"original {original!r}, the built-in's is {b.original!r}")
    if diffs:
        raise DataError(f"{where}: names its test set {name!r}, a built-in test set ({b.title}), but holds "
                        f"other contents ({'; '.join(diffs)}); give it a name of its own")


def declare(name: str, *, original: str | None, num_classes: int, num_images: int, title: str | None = None,
            where: str = "") -> TestSetInfo:
    """Register a user test set (e.g. from a sampler manifest) and the original it replicates.

    A built-in name is accepted only with the built-in's contents (:func:`check_builtin_name`); a name
    declared twice must keep its original. Returns the info.
    """
    from .files import DataError

    where = where or name
    check_builtin_name(name, num_images, num_classes, original, where)
    if name in TEST_SETS:
        return TEST_SETS[name]
    if original == name:
        raise DataError(f"{where}: test set {name!r} names itself as its original")
    info = TestSetInfo(name, int(num_classes), int(num_images), original, title or name)
    old = _DECLARED.get(name)
    if old is not None and old.original != info.original:
        raise DataError(f"{where}: test set {name!r} was declared with original {old.original!r}, now {original!r}")
    _DECLARED[name] = info
    return info


def declared() -> dict[str, TestSetInfo]:
    """The declared (non-built-in) test sets, by name."""
    return dict(sorted(_DECLARED.items()))


def declare_from_records(records) -> list[TestSetInfo]:
    """Declare the user test sets that store records were evaluated on.

    ``records`` are :class:`~generalization.store.records.Record`-like objects (``test_set``, ``n``,
    ``meta``); a record of a manifest test set carries ``meta["test_set_copy"]`` with ``original``,
    ``num_classes`` and ``title`` (written by the evaluator). Returns what was declared, sorted by name.
    """
    out = {}
    for r in records:
        copy = (r.meta or {}).get("test_set_copy") or {}
        if "original" not in copy or r.test_set in out:
            continue
        out[r.test_set] = declare(r.test_set, original=copy.get("original"),
                                  num_classes=int(copy.get("num_classes") or 0),
                                  num_images=int(copy.get("expected_count") or copy.get("n") or r.n),
                                  title=copy.get("title"), where=f"store record of {r.test_set}")
    return [out[k] for k in sorted(out)]


def pairs(present) -> list[tuple[str, str]]:
    """(original, new) pairs whose both test sets are in ``present``: the built-in pairs in the registry's
    order, then the declared ones sorted by new test set."""
    present = set(present)
    out = [(t.original, n) for n, t in TEST_SETS.items() if t.original and n in present and t.original in present]
    out += [(t.original, n) for n, t in sorted(_DECLARED.items())
            if t.original and n in present and t.original in present]
    return out
