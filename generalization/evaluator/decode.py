"""Image decoding and preprocessing shared by the evaluator and the benchmark.

A :class:`Preprocess` is data: the input size, the shorter-side resize before the centre crop, the
interpolation, and the normalisation. Models that share ``decode_key`` (size, resize, interpolation) share one
decoded uint8 copy of a test set; the normalisation (a cheap per-batch affine map) is applied per model.

Decoding uses ``torchvision.io`` (libjpeg-turbo / libpng on the CPU; nvJPEG when the device is CUDA), which
returns 3-channel RGB for grayscale, CMYK, palette and RGBA images alike and sniffs the real format (a PNG
named ``.jpeg`` decodes as a PNG). Formats torchvision cannot read fall back to PIL ``convert("RGB")``. A
truncated or corrupt file raises :class:`BadImageError` naming the file.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..files import DataError

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they work (libjpeg-turbo, nvJPEG), so
# keep the warning from being repeated for every image
_CODEC_DEPRECATION = "The image decoding and encoding capabilities of TorchVision"

__all__ = [
    "Preprocess",
    "BadImageError",
    "read_image_bytes",
    "decode_rgb",
    "resize_crop",
    "decode_file",
    "decode_pil_reference",
    "normalize",
]



class BadImageError(DataError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its images.

    Parameters
    ----------
    input_size : int
        Side of the square input (after the centre crop).
    resize_size : int or None
        Shorter side after resizing, before the centre crop (``input_size / crop_pct``). None: no resizing;
        the image must already be ``input_size`` square (CIFAR).
    interpolation : {"bilinear", "bicubic", "nearest"}
    mean, std : tuple of 3 floats
        Normalisation applied to RGB values scaled to [0, 1].
    """

    input_size: int
    resize_size: int | None
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"unknown interpolation {self.interpolation!r}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def decode_key(self) -> tuple[int, int | None, str]:
        """What decoding depends on: models with the same key share one decoded copy of a test set."""
        return (self.input_size, self.resize_size, self.interpolation)

    @property
    def crop_pct(self) -> float:
        return 1.0 if self.resize_size is None else self.input_size / self.resize_size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["crop_pct"] = round(self.crop_pct, 4)
        return d

    @classmethod
    def from_crop_pct(
        cls,
        input_size: int,
        crop_pct: float,
        interpolation: str = "bilinear",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ) -> Preprocess:
        """timm's convention: resize the shorter side to ``floor(input_size / crop_pct)``, then crop."""
        import math

        return cls(
            int(input_size), int(math.floor(input_size / crop_pct)), interpolation, tuple(mean), tuple(std)
        )


def read_image_bytes(path: str | os.PathLike) -> torch.Tensor:
    """The file's bytes as a 1-d uint8 tensor (what the torchvision decoders take)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadImageError(f"{path}: cannot read ({e})") from e
    if not data:
        raise BadImageError(f"{path}: empty file")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _decode_pil(data: torch.Tensor, path: Path) -> torch.Tensor:
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise BadImageError(f"{path}: not a readable image ({e})") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def decode_rgb(
    data: torch.Tensor, path: str | os.PathLike, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Decode encoded bytes to a 3 x H x W uint8 RGB tensor on ``device``.

    On CUDA, JPEGs go through nvJPEG (``torchvision.io.decode_jpeg(device="cuda")``); anything nvJPEG refuses is
    decoded on the CPU and moved over.
    """
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    path = Path(path)
    device = torch.device(device)
    is_jpeg = data.numel() > 3 and bytes(data[:3].tolist()) == b"\xff\xd8\xff"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CODEC_DEPRECATION, category=DeprecationWarning)
        if device.type == "cuda" and is_jpeg:
            try:
                return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            except RuntimeError:
                pass  # e.g. CMYK or progressive files nvJPEG cannot handle: the CPU decoder below can
        try:
            img = decode_image(data, mode=ImageReadMode.RGB)
        except RuntimeError as e:
            img = e
    if isinstance(img, RuntimeError):
        e = img
        msg = str(e)
        if "Unsupported image file" in msg:
            img = _decode_pil(data, path)  # BMP, TIFF, ... : PIL reads them
        else:
            first = msg.splitlines()[0].split(", ")[-1] if msg else type(e).__name__
            raise BadImageError(f"{path}: corrupt or truncated image ({first})") from e
    if img.ndim != 3 or img.shape[0] != 3:
        raise BadImageError(f"{path}: decoded to shape {tuple(img.shape)}, expected 3 x H x W")
    return img.to(device)


def resize_crop(img: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    """Resize the shorter side to ``pre.resize_size`` (antialiased) and centre-crop ``pre.input_size``.

    Works on uint8 tensors (C x H x W or B x C x H x W), returns uint8.
    """
    import torchvision.transforms.v2.functional as F
    from torchvision.transforms import InterpolationMode

    if pre.resize_size is None:
        if img.shape[-2:] != (pre.input_size, pre.input_size):
            raise DataError(
                f"image of size {tuple(img.shape[-2:])} where {pre.input_size} x {pre.input_size} is required"
            )
        return img
    mode = InterpolationMode(pre.interpolation)
    img = F.resize(img, [pre.resize_size], interpolation=mode, antialias=True)
    return F.center_crop(img, [pre.input_size, pre.input_size])


def decode_file(path: str | os.PathLike, pre: Preprocess, device: str | torch.device = "cpu") -> torch.Tensor:
    """Read, decode and resize/crop one file: 3 x S x S uint8 on ``device``."""
    return resize_crop(decode_rgb(read_image_bytes(path), path, device), pre)


def decode_pil_reference(path: str | os.PathLike, pre: Preprocess) -> torch.Tensor:
    """The PIL pipeline of timm's validate.py / torchvision's presets (Resize + CenterCrop on a PIL image):
    the reference the torchvision.io path is compared with. Returns 3 x S x S uint8."""
    from PIL import Image
    from torchvision import transforms as T

    interp = {
        "bilinear": T.InterpolationMode.BILINEAR,
        "bicubic": T.InterpolationMode.BICUBIC,
        "nearest": T.InterpolationMode.NEAREST,
    }[pre.interpolation]
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise BadImageError(f"{path}: not a readable image ({e})") from e
    if pre.resize_size is not None:
        im = T.CenterCrop(pre.input_size)(T.Resize(pre.resize_size, interpolation=interp)(im))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)


def normalize(
    batch: torch.Tensor, pre: Preprocess, dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None
) -> torch.Tensor:
    """uint8 B x 3 x S x S -> normalised float batch in channels-last memory format (same device).

    ``(x / 255 - mean) / std`` as one conversion pass and one in-place multiply and add over each image's
    pixels seen as one long H*W*3 row (channels-last memory), against per-position scale and offset rows: a
    3-wide broadcast in the innermost dimension does not vectorise (measured: 25 ms -> 7.5 ms per 64 x 224 px
    batch on 2 cores, bit-identical). ``out`` (a float32 channels-last buffer of at least B images) is reused
    when given: allocating a fresh 40 MB tensor per batch costs as much as the arithmetic (page faults).
    """
    if out is None or out.shape[1:] != batch.shape[1:] or out.shape[0] < batch.shape[0]:
        out = torch.empty(
            batch.shape, dtype=torch.float32, device=batch.device, memory_format=torch.channels_last
        )
    x = out[: batch.shape[0]]
    x.copy_(batch)
    b, c, h, w = x.shape
    scale, offset = _affine_rows(pre, h, w, batch.device)
    rows = x.permute(0, 2, 3, 1).view(b, h * w * c)  # the same memory, pixel-major
    rows.mul_(scale).add_(offset)
    return x if dtype == torch.float32 else x.to(dtype)


@functools.lru_cache(maxsize=16)
def _affine_rows(pre: Preprocess, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / (255 std)`` and ``-mean / std`` repeated for every pixel of an h x w channels-last image."""
    std = torch.tensor(pre.std, dtype=torch.float32)
    mean = torch.tensor(pre.mean, dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).repeat(h * w).to(device)
    offset = (-(mean / std)).repeat(h * w).to(device)
    return scale, offset
