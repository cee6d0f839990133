"""Class-subset scoring: a test set whose label space is a subset of the model's.

ImageNet-A and ImageNet-R cover 200 of ImageNet's 1,000 classes, ObjectNet 113 (mapped to 125 ImageNet
classes). As in imagenet-testbed (and Hendrycks et al.), such a test set is scored on the model's outputs
**restricted to its classes**: the prediction is the arg-max over the subset's logits only. An unrestricted
1,000-way arg-max gives near-zero ImageNet-A accuracy, a known pitfall.

A label space is a list of *groups* of ImageNet class indices: one class per group for ImageNet-A/-R; for
ObjectNet one group per ObjectNet class (e.g. "Alarm clock" = analog clock + digital clock). A group's
score is the max of its classes' logits (the testbed's collapse); predictions and labels are written as
the group's first ImageNet index (its *representative*), so they stay in the model's 1,000-class index
space, and "correct" means "same group" -- for ObjectNet exactly the testbed's rule (the arg-max over the
125 classes lies in the image's ObjectNet class).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import torch

from ..test_sets import CATALOG

__all__ = ["label_space", "restricted_topk"]


@cache
def _groups(key: str) -> tuple[tuple[int, ...], ...] | None:
    from ..testbed_metadata import bundle

    b = bundle()
    if key == "objectnet":
        on = b["objectnet"]["objectnet_to_imagenet"]
        return tuple(tuple(on[name]) for name in sorted(on))
    sub = b["class_sublists"].get(key)
    return None if sub is None else tuple((c,) for c in sorted(sub))


def label_space(test_set: str) -> tuple[tuple[int, ...], ...] | None:
    """The groups of ImageNet class indices a test set is scored on; None for the model's full label space.

    From the catalog's ``classes`` (:func:`generalization.test_sets.class_subset`); a test set the catalog
    does not know, or whose subset the package does not ship, is scored on all classes.
    """
    info = CATALOG.get(test_set)
    if info is None or info.classes is None:
        return None
    return _groups(info.classes)


def restricted_topk(logits: torch.Tensor, groups: Sequence[Sequence[int]], k: int = 5) -> torch.Tensor:
    """Top-``k`` over the groups' scores (max logit of each group's classes), best first.

    Returns a ``B x min(k, len(groups))`` tensor of each chosen group's representative (first) class index
    in the model's label space.
    """
    logits = logits.float()
    if all(len(g) == 1 for g in groups):
        index = torch.tensor([g[0] for g in groups], device=logits.device)
        scores = logits.index_select(1, index)
        reps = index
    else:
        scores = torch.stack([logits[:, list(g)].amax(dim=1) for g in groups], dim=1)
        reps = torch.tensor([g[0] for g in groups], device=logits.device)
    top = scores.topk(min(k, len(groups)), dim=1).indices
    return reps[top]
