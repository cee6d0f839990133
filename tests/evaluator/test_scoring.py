"""Class-subset scoring (ImageNet-A/-R, ObjectNet) against a restricted arg-max computed independently, on
the real photos of ../shared/data/imagenet-sample; the shift datasets' loaders."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from generalization.evaluator import runner as ev
from generalization.evaluator.datasets import CountMismatchWarning, load_dataset, verify_data
from generalization.evaluator.decode import Preprocess
from generalization.evaluator.decoding import decode_images
from generalization.evaluator.models import ModelSpec
from generalization.evaluator.scoring import label_space, restricted_topk
from generalization.files import DataError
from generalization.store.records import PredictionStore
from generalization.testbed_metadata import parse_class_sublist


class _Seeded1000(nn.Module):
    """A fixed-seed linear model with 1,000 outputs; class 0 (tench, not an ImageNet-A class) gets a large
    bias, so the unrestricted arg-max is always 0 and only a restricted one can differ from it."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.fc = nn.Linear(3 * 8 * 8, 1000).double()
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g, dtype=torch.float64))
            self.fc.bias.copy_(torch.randn(1000, generator=g, dtype=torch.float64))
            self.fc.bias[0] += 1000.0

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(x.double(), 8).flatten(1))


def _wnid_layout(shared_data: Path, root: Path, wnids: set[str]) -> Path:
    for f in sorted((shared_data / "imagenet-sample").glob("*.JPEG")):
        w = f.name.split("_")[0]
        if w in wnids:
            (root / w).mkdir(parents=True, exist_ok=True)
            (root / w / f.name).symlink_to(f)
    return root


def test_imagenet_a_scored_on_its_200_classes(shared_data, tmp_path):
    meta = shared_data / "imagenet-testbed-metadata"
    subset = parse_class_sublist(meta / "src__eval_settings__imagenet_a.py")  # read here, not the shipped copy
    from generalization.evaluator.datasets import imagenet_wnids

    wnids = imagenet_wnids()
    _wnid_layout(shared_data, tmp_path / "imagenet-a", {wnids[i] for i in subset})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CountMismatchWarning)  # 200 photos, not the published 7,500
        ds = load_dataset("imagenet-a", tmp_path)
    assert len(ds) == 200 and sorted(set(ds.labels)) == sorted(subset)

    pre = Preprocess(64, 73)
    spec = ModelSpec("seeded1000", _Seeded1000, pre, 1000, "imagenet")
    store = tmp_path / "store"
    ev.evaluate([spec], [ds], out=store, log=lambda *a: None, progress=False)
    got = PredictionStore(store).predictions("evaluate", "seeded1000", "imagenet-a")

    # independently: the same model's logits on the same decoded pixels, then numpy's restricted arg-max
    decoded = decode_images(ds, pre)
    model = _Seeded1000().eval()
    mean, std = np.array(pre.mean), np.array(pre.std)
    x = decoded.images.numpy().astype(np.float64) / 255.0
    x = (x - mean[None, :, None, None]) / std[None, :, None, None]
    logits = model(torch.from_numpy(x)).detach().numpy()
    sub = np.array(sorted(subset))
    expected = sub[np.argmax(logits[:, sub], axis=1)]
    np.testing.assert_array_equal(got[:, 0], expected)
    expected5 = sub[np.argsort(-logits[:, sub], axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(got, expected5)
    assert (np.argmax(logits, axis=1) == 0).all()  # the unrestricted arg-max: never an ImageNet-A class
    rec = PredictionStore(store).get("evaluate", "seeded1000", "imagenet-a")
    assert rec.top1_correct == int((expected == ds.labels).sum())
    assert rec.n == 200 and "partial" in rec.meta.get("flag", "")


def test_objectnet_groups_match_the_testbed_rule(shared_data):
    """Collapsed (max-per-ObjectNet-class) top-1 = the testbed's rule: the arg-max over the 125 mapped
    ImageNet classes lies in the image's ObjectNet class."""
    meta = shared_data / "imagenet-testbed-metadata"
    on = json.loads((meta / "src__eval_settings__objectnet_metadata__objectnet_to_imagenet_1k.json").read_text())
    names = json.loads((meta / "src__eval_settings__objectnet_metadata__imagenet_to_labels.json").read_text())
    idx = {v: int(k) for k, v in names.items()}
    groups = {c: [idx[n] for n in v.split("; ")] for c, v in on.items()}
    assert len(groups) == 113
    sublist = [i for g in groups.values() for i in g]
    assert len(sublist) == 125

    space = label_space("objectnet-1.0-beta")
    assert sorted(map(sorted, space)) == sorted(sorted(g) for g in groups.values())
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 1000))
    logits[:, 0] += 50  # an unmapped class wins the unrestricted arg-max
    top = restricted_topk(torch.from_numpy(logits), space, 5).numpy()
    assert top.shape == (500, 5)
    rep = {i: g[0] for g in space for i in g}  # every mapped class -> its group's representative
    best = np.array(sublist)[np.argmax(logits[:, sublist], axis=1)]
    np.testing.assert_array_equal(top[:, 0], [rep[b] for b in best])
    # top-5 groups by max logit, computed with numpy
    reps = np.array([g[0] for g in space])
    scores = np.stack([logits[:, list(g)].max(axis=1) for g in space], axis=1)
    np.testing.assert_array_equal(top, reps[np.argsort(-scores, axis=1, kind="stable")[:, :5]])
    assert label_space("imagenet-val") is None and label_space("imagenet-sketch") is None
    assert len(label_space("imagenet-r")) == 200


def test_shift_loaders_name_what_is_wrong(shared_data, tmp_path):
    from generalization.evaluator.datasets import imagenet_wnids

    wnids = imagenet_wnids()
    r_sub = parse_class_sublist(shared_data / "imagenet-testbed-metadata" / "src__eval_settings__imagenet_r.py")
    root = _wnid_layout(shared_data, tmp_path / "imagenet-r", {wnids[i] for i in r_sub[:-1]})
    (root / "n99999999").mkdir()
    rep = verify_data("imagenet-r", tmp_path)
    assert not rep.ok
    assert f"1 class folder(s) missing (e.g. ['{wnids[r_sub[-1]]}'])" in rep.problems[0]
    assert "1 unknown class folder(s) (e.g. ['n99999999'])" in rep.problems[0]
    with pytest.raises(DataError, match="ImageNet-Sketch: download it from"):
        load_dataset("imagenet-sketch", tmp_path / "nothing")
    # ObjectNet: class folders by ObjectNet name; the 200 non-overlapping classes are left out
    on = tmp_path / "on" / "objectnet-1.0" / "images"
    photos = sorted((shared_data / "imagenet-sample").glob("*.JPEG"))
    for i, folder in enumerate(["alarm_clock", "banana", "not_in_imagenet"]):
        (on / folder).mkdir(parents=True)
        (on / folder / "a.png").symlink_to(photos[i])
    with pytest.raises(DataError, match=r"ObjectNet: .*111 class folder\(s\) missing"):
        load_dataset("objectnet-1.0-beta", tmp_path / "on")
