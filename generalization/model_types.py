"""Model types: standard training, trained with more data, robustness interventions, other.

The accuracy table's ``model_type`` column takes one of :data:`MODEL_TYPES` (or ``""`` when unknown); it
defines the standard-model baseline of effective robustness (Taori et al. 2020) and colours the figures.
``model_type_detail`` keeps the finer source label (the testbed's ``ModelTypes`` member, timm's
``pretrain`` value or pretrained tag).

Sources:

- imagenet-testbed's ``plotting/model_types.py`` (shipped as data, :mod:`generalization.testbed_metadata`):
  ``STANDARD`` -> standard, ``MORE_DATA`` -> more_data, ``ROBUST_INTV`` and ``LP_ADV`` ->
  robustness_intervention; random features, pixels, forests, nearest neighbours, low-accuracy CNNs -> other.
- timm: the pretrained tag of the model name (``vit_base_patch16_224.augreg_in21k_ft_in1k``) when it has
  one, else ``model_metadata-in1k.csv``'s ``pretrain`` for the architecture. Pretraining on more than
  ImageNet-1k (in21k/in22k/in12k, JFT, Instagram, YFCC, LAION, CLIP/OpenAI, ...) -> more_data;
  adversarial training and AdvProp -> robustness_intervention; distillation -> other (its teacher may have
  seen more data); plain ImageNet-1k -> standard.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from .files import DataError
from .sources import TIMM

__all__ = ["MODEL_TYPES", "testbed_model_type", "timm_model_type", "read_timm_metadata", "infer_model_type"]

MODEL_TYPES = ("standard", "more_data", "robustness_intervention", "other")

# pretraining data beyond ImageNet-1k, as it appears in timm tags and metadata
_MORE_DATA = re.compile(
    r"in21k|in22k|in12k|jft|ig1b|ig3b|ig\d|insta|swsl|wsl|yfcc|yfc|laion|openai|clip|dfn|datacomp|metaclip|"
    r"cc12m|m38m|merged|swag|lvd|semisl|selfsl|webli"
)
_ROBUST = re.compile(r"(^|[_-])(adv|ap|advprop|am|augmix|sin|stylized)([_-]|$)")
_DIST = re.compile(r"(^|[_-])(dist|distilled|kd)([_-]|$)")


def testbed_model_type(name: str) -> tuple[str, str]:
    """``(model_type, testbed type)`` of a testbed model name; ``("", "")`` if the testbed has no entry."""
    from .testbed_metadata import TESTBED_TYPE_TO_MODEL_TYPE, bundle

    t = bundle()["model_types"].get(name)
    return (TESTBED_TYPE_TO_MODEL_TYPE[t], t) if t else ("", "")


def _classify(label: str) -> str:
    label = label.lower()
    if _MORE_DATA.search(label):
        return "more_data"
    if _ROBUST.search(label):
        return "robustness_intervention"
    if _DIST.search(label):
        return "other"
    if "in1k" in label or label in ("tv", "gluon", "ra", "a1", "a2", "a3"):
        return "standard"
    return "other"


def timm_model_type(model: str, metadata: dict[str, str] | None = None) -> tuple[str, str]:
    """``(model_type, detail)`` of a timm model (``arch.tag``, optionally ``@img_size``)."""
    model = model.split("@", 1)[0]
    arch, _, tag = model.partition(".")
    if tag:
        return _classify(tag), tag
    if metadata and arch in metadata:
        return _classify(metadata[arch]), metadata[arch]
    return "", ""


def read_timm_metadata(path: str | os.PathLike) -> dict[str, str]:
    """timm's ``model_metadata-in1k.csv``: architecture -> ``pretrain`` (e.g. ``in21k``, ``in1k-dist``)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"model", "pretrain"} <= set(reader.fieldnames):
                raise DataError(f"{path}: expected columns model, pretrain (timm's model_metadata-in1k.csv)")
            out = {}
            for line, row in enumerate(reader, start=2):
                model, pre = (row["model"] or "").strip(), (row["pretrain"] or "").strip()
                if not model:
                    raise DataError(f"{path}: line {line}: column model: empty model name")
                if not pre:
                    raise DataError(f"{path}: line {line}: column pretrain: empty for {model}")
                out[model] = pre
            return out
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not readable ({e})") from e


def infer_model_type(source: str, model: str) -> str:
    """A row's model type when the table has none (e.g. an ``accuracies.csv`` without the column): timm's
    pretrained tag for ``timm`` rows, else the testbed's type of the same model name; ``""`` if unknown."""
    if source == TIMM:
        return timm_model_type(model)[0]
    return testbed_model_type(model)[0]
