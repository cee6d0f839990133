"""Canonical test-set names, used everywhere (store, importers, evaluator, analysis).

Each new test set names the original it replicates (or is compared against), so the analysis knows which
accuracies to pair. Test sets built with the sampler are *declared* (:func:`declare`): their manifest (and
every store record evaluated on them) names the original, so :func:`pairs` finds them next to the built-in
pairs.

Two dictionaries:

:data:`TEST_SETS`
    The paper's own test sets (ImageNet, ImageNetV2, CIFAR-10, CIFAR-10.1): the pairs the trend analysis
    (``analysis/trends.py``) fits and draws.
:data:`CATALOG`
    Every test set the project knows: the paper's, plus every published distribution shift of ImageNet
    (the imagenet-testbed's 213 evaluation settings and timm's result tables): ImageNet-A, -R, -Sketch,
    ObjectNet, ImageNet-Vid-Robust, YTBB-Robust, ImageNetV2 variants, ImageNet-C (19 corruptions x 5
    severities, applied in memory or read from the released JPEGs), Stylized ImageNet, greyscale, PGD
    attacks, ImageNet-ReaL labels, and the class-restricted validation sets they are compared against
    (e.g. ImageNet-A against ImageNet validation on the same 200 classes, ``val-on-imagenet-a-classes``).

Each entry also says which label space its labels index (``label_space``: ``imagenet-1k``, the 1,000
ImageNet classes in sorted-wnid order, or ``cifar10``) and the names it goes by in each published source
(``source_names``: the ImageNetV2 release's dataset file, the imagenet-testbed column, timm's result table;
see :data:`PUBLISHED_SOURCES`): the importers derive their file/column -> test-set mappings from these
(:func:`source_map`), and the evaluator's loader specs (``evaluator/dataset_registry.py``) take title, label
space and image count from here. This module is the one place these facts are written; a new test set
starts with its entry here.

Each entry has a ``kind``: ``original``, ``natural`` (new images), ``synthetic`` (computed from the
original images: corruptions, style transfer, greyscale), ``adversarial`` (PGD attacks on the original
images) or ``relabeled`` (the original images with new labels). ``classes`` names a class subset of
ImageNet's 1,000 (see :func:`class_subset`) for the test sets whose label space is smaller; their
accuracy is the model's accuracy restricted to that subset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .sources import IMAGENETV2_RELEASE, TESTBED, TIMM

__all__ = ["TestSetInfo", "TEST_SETS", "CATALOG", "KINDS", "LABEL_SPACES", "PUBLISHED_SOURCES", "ORIGINAL_TEST_SETS",
           "NEW_TEST_SETS", "IMAGENET_C_CORRUPTIONS", "original_of", "get_info", "title_of", "class_subset",
           "natural_shifts", "source_map", "declare", "declared", "declare_from_records", "reset_declared",
           "declarations", "check_builtin_name", "pairs"]

KINDS = ("original", "natural", "synthetic", "adversarial", "relabeled")
#: label spaces: ``imagenet-1k`` = the 1,000 ImageNet classes, class index = position of the wnid in the sorted
#: wnids; ``cifar10`` = the 10 CIFAR-10 classes in their official order
LABEL_SPACES = ("imagenet-1k", "cifar10")
#: the published sources a test set may have a name in (the store's ``source`` names of their importers):
#: ``imagenetv2-release`` = the release's ``data/datasets/<name>.json``, ``testbed`` = a column of
#: imagenet-testbed's ``robustness_top1s.csv``, ``timm`` = timm's ``results-<name>.csv``
PUBLISHED_SOURCES = (IMAGENETV2_RELEASE, TESTBED, TIMM)


@dataclass(frozen=True)
class TestSetInfo:
    """One test set.

    ``num_images`` is the published size (for a published accuracy, the n that turns a percentage back
    into a count; ``size_note`` says when that size is uncertain). ``classes`` is ``None`` when the label
    space is all ``num_classes`` classes of the model, else the name of a class subset (:func:`class_subset`).
    """

    __test__ = False  # not a pytest test class, despite its name

    name: str
    num_classes: int
    num_images: int
    original: str | None  # the test set this one replicates / is compared against; None for an original
    title: str
    kind: str = "original"
    classes: str | None = None  # class subset of ImageNet's 1,000 (a key of class_subset), None = all
    family: str = ""  # groups variants (e.g. all ImageNet-C settings) in the landscape overview
    size_note: str = ""
    label_space: str = ""  # a LABEL_SPACES name; "" for a declared test set (its manifest carries its classes)
    #: (source, the name this test set goes by there), one pair per PUBLISHED_SOURCES entry that publishes it
    source_names: tuple[tuple[str, str], ...] = ()

    def name_in(self, source: str) -> str | None:
        """The name this test set goes by in a published source (:data:`PUBLISHED_SOURCES`), None if not there."""
        return dict(self.source_names).get(source)


def _t(name, num_images, original, title, kind, *, num_classes=1000, classes=None, family="", size_note="",
       testbed: str | bool = True, timm: str | None = None):
    """A catalog entry of an ImageNet shift. The shifts are imagenet-testbed's evaluation settings, so
    ``testbed`` is the column name: True = the test set's own name, False = not a testbed column."""
    names = {TESTBED: name if testbed is True else testbed, TIMM: timm}
    return TestSetInfo(name, num_classes, num_images, original, title, kind, classes, family or name, size_note,
                       "imagenet-1k", tuple((k, v) for k, v in names.items() if v))


def _paper_names(release: str | None, testbed: str, timm: str | None = None) -> tuple[tuple[str, str], ...]:
    """The source names of one of the paper's ImageNet test sets."""
    names = {IMAGENETV2_RELEASE: release, TESTBED: testbed, TIMM: timm}
    return tuple((k, v) for k, v in names.items() if v)


TEST_SETS: dict[str, TestSetInfo] = {
    t.name: t
    for t in [
        # the testbed evaluates ImageNetV2 twice: its -format-val columns (re-encoded like validation, what its
        # papers report) are these; its plain imagenetv2-* columns are our *-as-released test sets
        TestSetInfo("imagenet-val", 1000, 50_000, None, "ImageNet validation", label_space="imagenet-1k",
                    source_names=_paper_names("imagenet-validation-original", "val", "imagenet")),
        TestSetInfo("imagenetv2-matched-frequency", 1000, 10_000, "imagenet-val", "ImageNetV2 MatchedFrequency",
                    "natural", family="imagenetv2", label_space="imagenet-1k",
                    source_names=_paper_names("imagenetv2-b-33", "imagenetv2-matched-frequency-format-val",
                                              "imagenetv2-matched-frequency")),
        TestSetInfo("imagenetv2-threshold0.7", 1000, 10_000, "imagenet-val", "ImageNetV2 Threshold0.7", "natural",
                    family="imagenetv2", label_space="imagenet-1k",
                    source_names=_paper_names("imagenetv2-a-44", "imagenetv2-threshold-0.7-format-val")),
        TestSetInfo("imagenetv2-top-images", 1000, 10_000, "imagenet-val", "ImageNetV2 TopImages", "natural",
                    family="imagenetv2", label_space="imagenet-1k",
                    source_names=_paper_names("imagenetv2-c-12", "imagenetv2-top-images-format-val")),
        TestSetInfo("cifar10-test", 10, 10_000, None, "CIFAR-10 test", label_space="cifar10"),
        TestSetInfo("cifar10.1-v4", 10, 2_021, "cifar10-test", "CIFAR-10.1 v4", "natural", family="cifar10.1",
                    label_space="cifar10"),
        TestSetInfo("cifar10.1-v6", 10, 2_000, "cifar10-test", "CIFAR-10.1 v6", "natural", family="cifar10.1",
                    label_space="cifar10"),
    ]
}

#: ImageNet-C's 15 benchmark corruptions plus its 4 extra ones, as named in the testbed
IMAGENET_C_CORRUPTIONS = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_blur",
    "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur", "pixelate",
    "saturate", "shot_noise", "snow", "spatter", "speckle_noise", "zoom_blur",
)  # fmt: skip

_VAL = "imagenet-val"


def _shifts() -> list[TestSetInfo]:
    s = [
        # originals restricted to a shift's classes (the testbed's val-on-*-classes; timm's *-clean tables)
        _t("val-on-imagenet-a-classes", 10_000, None, "ImageNet validation, ImageNet-A's 200 classes", "original", classes="imagenet-a",
           timm="imagenet-a-clean"),
        _t("val-on-imagenet-r-classes", 10_000, None, "ImageNet validation, ImageNet-R's 200 classes", "original", classes="imagenet-r",
           timm="imagenet-r-clean"),
        _t("val-on-objectnet-classes", 6_250, None, "ImageNet validation, ObjectNet's 113 classes", "original", classes="objectnet"),
        _t("val-on-vid-robust-classes", 14_400, None, "ImageNet validation, ImageNet-Vid-Robust's 30 classes", "original", classes="imagenet-vid-robust"),
        _t("val-on-ytbb-robust-classes", 11_550, None, "ImageNet validation, YTBB-Robust's 24 classes", "original", classes="ytbb-robust"),
        _t("val_subsampled_class_1_8", 6_250, None, "ImageNet validation, 125 classes (1 in 8)", "original", classes="1-in-8"),
        # natural shifts
        _t("imagenet-a", 7_500, "val-on-imagenet-a-classes", "ImageNet-A", "natural", classes="imagenet-a", timm="imagenet-a"),
        _t("imagenet-r", 30_000, "val-on-imagenet-r-classes", "ImageNet-R", "natural", classes="imagenet-r", timm="imagenet-r"),
        _t("imagenet-sketch", 50_889, _VAL, "ImageNet-Sketch", "natural", timm="sketch"),
        _t("objectnet-1.0-beta", 18_514, "val-on-objectnet-classes", "ObjectNet", "natural", classes="objectnet",
           size_note="the images of ObjectNet's 113 classes that overlap ImageNet"),
        _t("imagenet-vid-robust_pm0", 1_109, "val-on-vid-robust-classes", "ImageNet-Vid-Robust (anchor frames)", "natural",
           classes="imagenet-vid-robust", family="imagenet-vid-robust"),
        _t("imagenet-vid-robust_pm10", 1_109, "val-on-vid-robust-classes", "ImageNet-Vid-Robust (pm-10 frames)", "natural",
           classes="imagenet-vid-robust", family="imagenet-vid-robust"),
        _t("ytbb-robust_pm0", 2_530, "val-on-ytbb-robust-classes", "YTBB-Robust (anchor frames)", "natural",
           classes="ytbb-robust", family="ytbb-robust"),
        _t("ytbb-robust_pm10", 2_530, "val-on-ytbb-robust-classes", "YTBB-Robust (pm-10 frames)", "natural",
           classes="ytbb-robust", family="ytbb-robust"),
        # ImageNetV2 as released (the testbed also evaluates it re-encoded like validation: our
        # imagenetv2-* names, which are the testbed's *-format-val columns)
        _t("imagenetv2-matched-frequency-as-released", 10_000, _VAL, "ImageNetV2 MatchedFrequency (released JPEGs)", "natural", family="imagenetv2",
           testbed="imagenetv2-matched-frequency"),
        _t("imagenetv2-threshold0.7-as-released", 10_000, _VAL, "ImageNetV2 Threshold0.7 (released JPEGs)", "natural", family="imagenetv2",
           testbed="imagenetv2-threshold0.7"),
        _t("imagenetv2-top-images-as-released", 10_000, _VAL, "ImageNetV2 TopImages (released JPEGs)", "natural", family="imagenetv2",
           testbed="imagenetv2-topimages"),
        _t("imagenetv2-matched-frequency-format-val_subsampled_class_1_8", 1_250, "val_subsampled_class_1_8",
           "ImageNetV2 MatchedFrequency, 125 classes (1 in 8)", "natural", classes="1-in-8", family="imagenetv2"),
        # relabeled
        _t("imagenet-real", 50_000, _VAL, "ImageNet-ReaL labels", "relabeled",
           size_note="ReaL scores the 46,837 validation images that kept a label; counts assume 50,000",
           testbed=False, timm="imagenet-real"),  # timm's table; the testbed has no ReaL column
        # synthetic
        _t("greyscale", 50_000, _VAL, "Greyscale", "synthetic"),
        _t("stylized_imagenet", 50_000, _VAL, "Stylized ImageNet", "synthetic"),
    ]
    for c in IMAGENET_C_CORRUPTIONS:
        for sev in range(1, 6):
            for where, how in (("in-memory", "applied in memory"), ("on-disk", "released JPEGs")):
                if c == "glass_blur" and where == "in-memory":
                    continue  # the testbed evaluates glass blur only from the released JPEGs (too slow to apply)
                s.append(_t(f"imagenet-c.{c}.{sev}_{where}", 50_000, _VAL, f"ImageNet-C {c.replace('_', ' ')} {sev} ({how})",
                            "synthetic", family="imagenet-c"))  # fmt: skip
    for name, title in (("pgd.l2.eps0.1", "PGD L2 eps 0.1"), ("pgd.l2.eps0.5", "PGD L2 eps 0.5"),
                        ("pgd.linf.eps0.5", "PGD Linf eps 0.5/255"), ("pgd.linf.eps2", "PGD Linf eps 2/255")):  # fmt: skip
        s.append(_t(name, 5_000, _VAL, title, "adversarial", family="pgd",
                    size_note="the testbed attacks a fixed 10 % sample of validation (5,000 images)"))  # fmt: skip
    return s


CATALOG: dict[str, TestSetInfo] = {**TEST_SETS, **{t.name: t for t in _shifts()}}

ORIGINAL_TEST_SETS = [n for n, t in TEST_SETS.items() if t.original is None]
NEW_TEST_SETS = [n for n, t in TEST_SETS.items() if t.original is not None]


def _check_catalog(catalog: dict[str, TestSetInfo]) -> None:
    """The catalog's own consistency (run at import: a bad entry fails every test, not one user's import)."""
    seen: dict[tuple[str, str], str] = {}
    for n, t in catalog.items():
        problems = [f"label space {t.label_space!r}"] if t.label_space not in LABEL_SPACES else []
        problems += [f"source {s!r}" for s, _ in t.source_names if s not in PUBLISHED_SOURCES]
        problems += [f"original {t.original!r}"] if t.original is not None and t.original not in catalog else []
        problems += [f"kind {t.kind!r}"] if t.kind not in KINDS else []
        for key in t.source_names:
            if key in seen:
                problems.append(f"{key[0]} name {key[1]!r}, already {seen[key]!r}'s")
            seen[key] = n
        if problems:
            raise ValueError(f"test_sets.CATALOG[{n!r}]: invalid {', '.join(problems)}")


_check_catalog(CATALOG)


def source_map(source: str) -> dict[str, str]:
    """``{name in a published source: test-set name}`` for one of :data:`PUBLISHED_SOURCES`, in catalog order.

    The importers' mappings (the release's dataset files, the testbed's columns, timm's tables) are these.
    """
    if source not in PUBLISHED_SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(PUBLISHED_SOURCES)}")
    return {t.name_in(source): n for n, t in CATALOG.items() if t.name_in(source) is not None}


#: test sets declared by manifests / store records in this process (name -> info); never a built-in name.
#: A process-wide registry like timm's ``register_model``: the CLI declares what a manifest or a store names,
#: and the analysis finds the pairs. :func:`reset_declared` empties it, :func:`declarations` scopes it.
_DECLARED: dict[str, TestSetInfo] = {}


def get_info(name: str) -> TestSetInfo | None:
    return CATALOG.get(name) or _DECLARED.get(name)


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
    info = TestSetInfo(name, int(num_classes), int(num_images), original, title or name,
                       "natural" if original else "original")
    old = _DECLARED.get(name)
    if old is not None and old.original != info.original:
        raise DataError(f"{where}: test set {name!r} was declared with original {old.original!r}, now {original!r}")
    _DECLARED[name] = info
    return info


def declared() -> dict[str, TestSetInfo]:
    """The declared (non-built-in) test sets, by name."""
    return dict(sorted(_DECLARED.items()))


def reset_declared() -> None:
    """Forget every declared test set (the built-in catalog stays)."""
    _DECLARED.clear()


@contextmanager
def declarations() -> Iterator[dict[str, TestSetInfo]]:
    """Scope declarations: what is declared inside the ``with`` block is forgotten after it, and what was
    declared before it is back (tests use it so that no test sees another's test sets).

    Yields the declarations in force at entry (a copy).
    """
    saved = dict(_DECLARED)
    try:
        yield dict(saved)
    finally:
        _DECLARED.clear()
        _DECLARED.update(saved)


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


def natural_shifts(names) -> list[str]:
    """The natural shifts among ``names`` (catalog order), excluding CIFAR."""
    present = set(names)
    return [n for n, t in CATALOG.items() if n in present and t.kind == "natural" and t.num_classes == 1000]


def class_subset(name: str) -> list[int] | None:
    """The ImageNet class indices (0..999) of a test set's label space, or None for all classes.

    ``name`` is a test-set name or a subset name (``imagenet-a``, ``imagenet-r``, ``objectnet``). Subsets
    come from imagenet-testbed's eval settings (shipped as data, see :mod:`generalization.testbed_metadata`).
    ObjectNet's is 125 ImageNet classes (its 113 overlapping classes; some map to several ImageNet classes).
    Returns None for a subset the package does not ship (ImageNet-Vid-Robust, YTBB-Robust, 1-in-8).
    """
    from .testbed_metadata import bundle

    info = CATALOG.get(name)
    key = info.classes if info is not None else name
    if key is None:
        return None
    return bundle()["class_sublists"].get(key)
