"""Facts several subsystems share, kept in one place (the ground floor: imports nothing of the package)."""

from __future__ import annotations

__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD"]

# File suffixes read as images when a folder is listed (lower case). torchvision.io decodes JPEG, PNG, GIF and
# WebP; the others (BMP, TIFF, PPM) go through PIL.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})

# The per-channel mean and standard deviation (RGB, on 0..1 values) of the ImageNet training set that
# torchvision's and most of timm's models are normalised with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
