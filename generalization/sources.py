"""Result sources: the ``source`` column of every store and accuracy table, and what the project knows of each.

A source says where a row's predictions or accuracies come from: a release of predictions, a published
accuracy table, or this project's own evaluations. Each known source is one :class:`Source` in
:data:`SOURCES`, the one place that holds its name, its legend label, its figure style and whether its models
are a *fitting baseline* (the models the paper fits, which the default ``paper`` / ``release`` model sets of
:mod:`generalization.analysis.trends` fit, and which count as standard models when the table carries no
``model_type``). Any other name (a user's own source) is valid too: :func:`get_source` gives it a
deterministic style and no special role.

To add a known source, add one :class:`Source` to :data:`SOURCES` (and a name constant if code writes it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Source",
    "SOURCES",
    "SPARE_STYLES",
    "IMAGENETV2_RELEASE",
    "CIFAR101_RELEASE",
    "TIMM",
    "TESTBED",
    "EVALUATE",
    "EVALUATE_BF16",
    "get_source",
    "baseline_sources",
    "non_standard_models",
]

IMAGENETV2_RELEASE = "imagenetv2-release"
CIFAR101_RELEASE = "cifar10.1-release"
TIMM = "timm"
TESTBED = "testbed"
EVALUATE = "evaluate"
EVALUATE_BF16 = "evaluate-bf16"


@dataclass(frozen=True)
class Source:
    """One source of results.

    Attributes
    ----------
    name : str
        The value of the ``source`` column.
    label : str
        Its name in figure legends.
    color, marker : str
        Matplotlib colour and marker of its points in the paper-style figures.
    landscape_marker : str
        Its marker in the landscape figures, where colour shows the model type instead.
    fits_baseline : bool
        Its models are the paper's reference models: the ``paper`` and ``release`` model sets fit them, and
        they count as standard models (effective-robustness baseline) when the table has no ``model_type``.
    original : str or None
        For a fitting baseline: the original test set whose trend it defines (one baseline per original).
    non_standard : tuple of str
        Its models that are not standard networks (the ImageNetV2 release's Fisher-vector models): left out of
        the ``paper`` model set and of the rule-based standard models.
    """

    name: str
    label: str
    color: str
    marker: str
    landscape_marker: str = "v"
    fits_baseline: bool = False
    original: str | None = None
    non_standard: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fits_baseline != (self.original is not None):
            raise ValueError(f"source {self.name!r}: a fitting baseline names its original test set, and only it")


#: the known sources, in no particular order (figures sort sources by name)
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        # the Fisher-vector models (Sánchez & Perronnin 2011): the paper's ImageNet fit is over the release's CNNs
        Source(IMAGENETV2_RELEASE, "ImageNetV2 release models", "tab:blue", "o", "^", True, "imagenet-val",
               ("fv_4k", "fv_16k", "fv_64k")),
        Source(CIFAR101_RELEASE, "CIFAR-10.1 release models", "tab:blue", "o", "^", True, "cifar10-test"),
        Source(TIMM, "timm (published)", "tab:orange", "s", "s"),
        Source(TESTBED, "imagenet-testbed (published)", "tab:green", "^", "o"),
        Source(EVALUATE, "evaluated here", "tab:purple", "D", "D"),
        # the same models as EVALUATE in another precision: its colour, another marker (not a spare style)
        Source(EVALUATE_BF16, "evaluated here (bf16)", "tab:purple", "v", "v"),
    )
}  # fmt: skip

#: (colour, marker) for sources not in :data:`SOURCES`
SPARE_STYLES = (("tab:brown", "v"), ("tab:pink", "P"), ("tab:olive", "X"), ("tab:cyan", "h"))


def get_source(name: str, drawn_with: Iterable[str] = ()) -> Source:
    """The :class:`Source` called ``name``; for an unknown name, one labelled by its name with a spare style.

    An unknown source's style is its position among the unknown names of ``drawn_with`` (the sources drawn in
    the same figure, sorted), so that sources drawn together never share a style; when ``drawn_with`` does not
    hold it, a fixed hash (CRC-32) of the name picks the style, the same in every run.
    """
    if name in SOURCES:
        return SOURCES[name]
    unknown = sorted({s for s in drawn_with if s not in SOURCES})
    k = unknown.index(name) if name in unknown else zlib.crc32(name.encode("utf-8"))
    color, marker = SPARE_STYLES[k % len(SPARE_STYLES)]
    return Source(name, name, color, marker)


def baseline_sources() -> dict[str, str]:
    """``{original test set: source}`` for every fitting baseline (the paper's models per original)."""
    return {s.original: s.name for s in SOURCES.values() if s.fits_baseline and s.original is not None}


def non_standard_models() -> dict[str, tuple[str, ...]]:
    """``{source: models}`` of the known sources' non-standard models (the Fisher vectors)."""
    return {s.name: s.non_standard for s in SOURCES.values() if s.non_standard}
