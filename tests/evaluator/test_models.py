"""Model registry: CIFAR ResNets with the real checkpoints (placed where torch.hub caches them), torchvision,
timm and EfficientNet-Lite preprocessing configs, custom builders."""

from __future__ import annotations

import sys

import pytest
import torch

from generalization.evaluator import models
from generalization.evaluator.decode import Preprocess
from generalization.files import DataError


@pytest.fixture
def offline_hub(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))

    def no_network(*a, **k):
        raise AssertionError("tests must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return torch_home


@pytest.mark.parametrize("depth,params", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)])
def test_cifar_resnets_load_published_checkpoints(offline_hub, depth, params):
    model, spec = models.get_model(f"cifar10/resnet{depth}")
    # parameter counts published with the checkpoints (akamaster/pytorch_resnet_cifar10 README), in millions
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 2) == params
    ckpt = torch.load(
        offline_hub / "hub" / "checkpoints" / models.CIFAR_RESNET_FILES[depth][0],
        map_location="cpu",
        weights_only=True,
    )
    ref = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    got = model.state_dict()
    # the checkpoints predate BatchNorm's num_batches_tracked buffers; every saved tensor is loaded
    assert {k for k in got if not k.endswith("num_batches_tracked")} == set(ref)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert spec.num_classes == 10 and spec.preprocess == Preprocess(32, None)
    assert spec.published_top1 == {20: 91.73, 32: 92.63, 44: 93.10, 56: 93.39}[depth]
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_tampered_checkpoint_is_refused(offline_hub, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    fname = models.CIFAR_RESNET_FILES[20][0]
    data = bytearray((offline_hub / "hub" / "checkpoints" / fname).read_bytes())
    data[-100] ^= 0xFF
    (home / "hub" / "checkpoints" / fname).write_bytes(bytes(data))
    monkeypatch.setenv("TORCH_HOME", str(home))
    with pytest.raises(DataError, match=f"{fname}: sha256 .* does not match the hash prefix '12fca82f'"):
        models.get_model("cifar10/resnet20")


def test_weights_only_refuses_code(tmp_path, monkeypatch):
    """A checkpoint that would run code on load is refused (weights_only=True)."""
    home = tmp_path / "home"
    (home / "hub" / "checkpoints").mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = home / "hub" / "checkpoints" / "evil.th"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(Exception, match="[Ww]eights only load failed|Unsupported global"):
        torch.hub.load_state_dict_from_url(
            "https://example.invalid/evil.th", model_dir=str(path.parent), weights_only=True
        )


def test_torchvision_preprocessing_from_weights_enum():
    from torchvision.models import ResNet50_Weights

    spec = models.model_spec("torchvision/resnet50")
    t = ResNet50_Weights.DEFAULT.transforms()
    assert spec.preprocess == Preprocess(
        t.crop_size[0], t.resize_size[0], "bilinear", tuple(t.mean), tuple(t.std)
    )
    assert spec.published_top1 == ResNet50_Weights.DEFAULT.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert spec.num_classes == 1000
    with pytest.raises(DataError, match="not a torchvision classification model"):
        models.model_spec("torchvision/no_such_net")


def test_timm_preprocessing_from_pretrained_cfg():
    import timm

    spec = models.model_spec("timm/resnet50.a1_in1k")
    cfg = timm.models.get_pretrained_cfg("resnet50.a1_in1k")
    size = (cfg.test_input_size or cfg.input_size)[-1]
    crop = cfg.test_crop_pct or cfg.crop_pct
    assert spec.preprocess.input_size == size
    assert spec.preprocess.resize_size == int(size / crop)
    assert spec.preprocess.interpolation == cfg.interpolation
    assert spec.preprocess.mean == tuple(cfg.mean)


def test_efficientnet_lite_specs():
    pytest.importorskip("efficientnet_lite_pytorch")
    for v, size in ((0, 224), (1, 240), (2, 260)):
        spec = models.model_spec(f"efficientnet-lite/lite{v}")
        assert spec.preprocess.input_size == size and spec.preprocess.interpolation == "bicubic"
        assert spec.preprocess.mean == pytest.approx((127 / 255,) * 3)
        assert spec.preprocess.std == pytest.approx((128 / 255,) * 3)
    model, pre = models.efficientnet_lite0()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(4.65e6, rel=0.01)  # 4.7M published


def test_custom_builder(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)), "
        "{'input_size': 32, 'resize_size': None}\n"
        "def broken():\n"
        "    return 'not a model'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_models", None)
    model, spec = models.get_model("my_models:build")
    assert spec.num_classes == 10 and spec.preprocess.input_size == 32 and spec.family == "cifar10"
    with pytest.raises(DataError, match="must return \\(model, preprocessing\\)"):
        models.model_spec("my_models:broken")
    with pytest.raises(DataError, match="cannot import"):
        models.model_spec("my_models:nothing")


def test_registry_listing():
    names = models.list_models()
    assert names[:4] == [f"cifar10/resnet{d}" for d in (20, 32, 44, 56)]
    assert "efficientnet-lite/lite0" in names and "torchvision/resnet50" in names
    assert models.list_models("torchvision/resnet1*") == [
        "torchvision/resnet101",
        "torchvision/resnet152",
        "torchvision/resnet18",
    ]
    with pytest.raises(DataError, match="unknown model"):
        models.model_spec("nonsense")


def test_each_family_resolves_the_names_it_lists():
    """The family table is the one place: what a family lists, it resolves (without building a model)."""
    for family in ("cifar10", "efficientnet-lite"):
        listed = models.list_models(f"{family}/*")
        assert listed and all(models.model_spec(n).name == n for n in listed)
    assert models.model_spec(models.list_models("torchvision/resnet18")[0]).name == "torchvision/resnet18"
    with pytest.raises(DataError) as e:
        models.model_spec("nope/x")
    assert all(f.usage in str(e.value) for f in models.FAMILIES.values())
