"""Near-duplicate detection between a candidate pool and an original test set.

A new test set must not contain copies of the original test images (nor several copies of one photo), so
the paper removed near-duplicates before sampling. This module does that in three steps:

1. **Neighbours.** For every candidate, the ``k`` nearest images among the *original* set and among the
   *other candidates*, under up to three distances:

   - ``l2``: squared pixel L2, ``sum((a - b) ** 2)`` over all ``H*W*3`` uint8 values of the fixed-size
     images (grey levels squared; an RMS difference of ``r`` grey levels is ``r**2 * H*W*3``). The search is
     exact and brute force (chunked ``||a||² + ||b||² - 2 a·b`` in float64 with torch, on CPU or CUDA):
     every term is an integer below 2**53, so the distances are exact integers and ties are broken by the
     smaller index.
   - ``dssim``: ``(1 - SSIM) / 2`` with scikit-image's SSIM definition (7x7 uniform window, sample
     covariance, ``K1=0.01``, ``K2=0.03``, data range 255, mean over the three channels). SSIM of all
     pairs is too expensive, so it is computed **only on the pixel-L2 shortlist**: the ``shortlist``
     nearest originals and the ``shortlist`` nearest other candidates of each candidate under ``l2``; the
     DSSIM neighbours are the best ``k`` of that shortlist. A batched re-implementation
     (:func:`ssim_pairs`) is used for speed; it equals ``skimage.metrics.structural_similarity`` to
     within 1e-10 (checked in the tests).
   - ``cnn``: squared L2 between L2-normalised penultimate-layer features of a torchvision backbone
     (``2 - 2 cos``, in [0, 4]). Weights: ``"DEFAULT"`` or a weights-enum name (downloaded by torchvision
     into ``$TORCH_HOME/hub/checkpoints`` if not there), or ``"random"``: seeded random initialisation,
     which needs no download (JPEG copies are still close in a random network's feature space, but the
     distances mean less than with trained weights).

2. **Links and components.** A candidate–original or candidate–candidate pair among the computed
   neighbours is a *duplicate link* when its distance is at most the metric's threshold under **any**
   of the selected metrics (defaults: ``l2`` 150 per value, i.e. ``150 * H*W*3``; ``dssim`` 0.12; ``cnn``
   none, i.e. reported but never linking, see :func:`resolve_thresholds`). Candidates and originals are
   the nodes of a graph whose edges are the links; in its connected components
   (:func:`scipy.sparse.csgraph.connected_components`):

   - a component that contains an original image is excluded whole: ``duplicate_of_original`` for a
     candidate linked directly to an original, ``connected_to_original`` for one linked only through
     other candidates;
   - a component of candidates only keeps exactly one **survivor: the candidate that comes first in the
     candidate order** (sorted relative path for a folder, row number for an ``.npy``); the others are
     ``duplicate_of_candidate`` (``duplicate_of`` names the survivor);
   - a candidate with no link is kept as ``unique``.

3. **Review.** A self-contained HTML page and a PNG contact sheet of the closest pairs: candidate–candidate
   links, the farthest linked pairs (possible false alarms) and the closest unlinked pairs (possible
   misses).

Inputs (:func:`load_image_set`): a folder of images (searched recursively, sorted by relative path, id =
relative POSIX path, decoded with Pillow and converted to RGB) or an ``.npy`` uint8 array of shape
``(N, H, W, 3)`` (id = row number as a string). All images must share one size, or ``size`` resizes every
image to ``size x size`` (bilinear) first.
"""

from __future__ import annotations

import base64
import html
import io as _io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD
from ..devices import resolve_device
from ..files import (
    DataError,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    load_npy,
    save_figure,
)

__all__ = [
    "METRICS",
    "DEFAULT_L2_PER_VALUE",
    "DEFAULT_THRESHOLDS",
    "resolve_thresholds",
    "ImageSet",
    "NearDuplicateResult",
    "load_image_set",
    "knn",
    "ssim_pairs",
    "ssim_index_pairs",
    "dssim_pairs",
    "cnn_features",
    "find_neighbors",
    "decide",
    "detect_near_duplicates",
    "review_pairs",
    "write_review",
    "run_near_duplicates",
]

METRICS = ("l2", "dssim", "cnn")

# Per-metric thresholds (a pair is a link when distance <= threshold), calibrated on CIFAR-10 test
# images against their own JPEG-75 copies (docs/near_duplicates.md). ``l2`` is given as a mean squared
# difference per value and multiplied by H*W*3 for the images at hand, so it does not depend on the size.
DEFAULT_L2_PER_VALUE = 150.0  # RMS difference ~12 grey levels
DEFAULT_THRESHOLDS: dict[str, float | None] = {"dssim": 0.12, "cnn": None}



# ------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ImageSet:
    """Fixed-size RGB images with their ids, in a fixed order (the order decides survivors)."""

    ids: list[str]
    images: np.ndarray  # uint8, (N, H, W, 3)
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise DataError(
                f"{self.source or 'image set'}: expected uint8 images of shape (N, H, W, 3), "
                f"got {self.images.dtype} {self.images.shape}"
            )
        if len(self.ids) != len(self.images):
            raise DataError(
                f"{self.source or 'image set'}: {len(self.ids)} ids for {len(self.images)} images"
            )
        if len(set(self.ids)) != len(self.ids):
            raise DataError(f"{self.source or 'image set'}: image ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


def _decode_files(files: list[Path], size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                img = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"{f}: cannot decode image ({e})") from e
        if size is not None:
            img = _resize(img, size)
        elif arrays and img.shape != arrays[0].shape:
            raise DataError(
                f"{f}: size {img.shape[1]}x{img.shape[0]} differs from {files[0]} "
                f"({arrays[0].shape[1]}x{arrays[0].shape[0]}); pass a fixed size (--size)"
            )
        arrays.append(img)
    return np.stack(arrays)


TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")


def load_image_set(path: str | Path, size: int | None = None, *, image_root: str | Path | None = None) -> ImageSet:
    """Read a folder of images, an ``.npy`` uint8 ``(N, H, W, 3)`` array, or a candidate table.

    Parameters
    ----------
    path
        A folder (searched recursively for image files, sorted by relative path; ids are the relative
        POSIX paths), an ``.npy`` file (ids are the row numbers, ``"0"``, ``"1"``, ...), or a table
        (CSV/JSONL/Parquet, e.g. the sampler's candidate table) with ``image_id`` and optionally ``path``:
        ids are the table's ``image_id`` in table order, files are ``image_root / path`` (or
        ``image_root / image_id`` without a ``path`` column). This is how the candidate table's ids become
        the ids of the decisions and ``exclusions.csv``.
    size
        Resize every image to ``size x size`` (bilinear). Without it all images must already share one size.
    image_root
        With a table: the folder its paths are relative to (default: the table's folder).

    Raises
    ------
    DataError
        Unreadable image, wrong array shape or dtype, no images, mixed sizes without ``size``.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in TABLE_EXTENSIONS:
        from .annotations import read_table

        table = read_table(path)
        if "image_id" not in table.columns:
            raise DataError(f"{path}: lacks column 'image_id'")
        if len(table) == 0:
            raise DataError(f"{path}: the table lists no images")
        root = Path(image_root) if image_root is not None else path.parent
        rel = table["path"] if "path" in table.columns else table["image_id"]
        files = [root / r for r in rel]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DataError(f"{path}: {len(missing)} image file(s) not found under {root} (e.g. {missing[:3]}); "
                            "pass the images' folder as --image-root")
        return ImageSet([str(i) for i in table["image_id"]], _decode_files(files, size), str(path))
    if path.is_dir():
        files = sorted(
            (
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ),
            key=lambda p: p.relative_to(path).as_posix(),
        )
        if not files:
            raise DataError(f"{path}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder")
        return ImageSet([f.relative_to(path).as_posix() for f in files], _decode_files(files, size), str(path))
    if path.suffix.lower() == ".npy":
        arr = load_npy(path)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise DataError(
                f"{path}: expected a uint8 array of shape (N, H, W, 3) (RGB, channels last), "
                f"got {arr.dtype} {arr.shape}"
            )
        if len(arr) == 0:
            raise DataError(f"{path}: the array holds no images")
        if size is not None:
            arr = np.stack([_resize(a, size) for a in arr])
        return ImageSet([str(i) for i in range(len(arr))], np.ascontiguousarray(arr), str(path))
    if not path.exists():
        raise DataError(f"{path}: not found")
    raise DataError(f"{path}: expected a folder of images, an .npy file or a table ({', '.join(TABLE_EXTENSIONS)})")


#: the paper's protocol: pixel L2 and DSSIM always; CNN features too when their weights are at hand
PAPER_METRICS = ("l2", "dssim")


def default_metrics(cnn_arch: str = "resnet18", cnn_weights: str = "DEFAULT") -> list[str]:
    """The paper's near-duplicate protocol: ``l2`` and ``dssim``, plus ``cnn`` when the backbone's weights
    are already in ``$TORCH_HOME/hub/checkpoints`` (or are ``random``); nothing is downloaded to decide."""
    metrics = list(PAPER_METRICS)
    if cnn_weights == "random":
        return metrics + ["cnn"]
    try:
        import torch
        import torchvision

        enum = torchvision.models.get_model_weights(cnn_arch)
        w = enum.DEFAULT if cnn_weights == "DEFAULT" else enum[cnn_weights]
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
    except (ValueError, KeyError, AttributeError):
        return metrics
    return metrics + ["cnn"] if cached.is_file() else metrics


# ---------------------------------------------------------------------------------------------- kNN


def knn(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    device: str | None = "cpu",
    query_chunk: int = 2048,
    base_chunk: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours under squared Euclidean distance.

    Parameters
    ----------
    queries, base
        ``(n, ...)`` and ``(m, ...)`` arrays (flattened to vectors). Integer arrays (uint8 images) give
        exact integer distances: the float64 sums stay below 2**53.
    k
        Neighbours per query (capped at the number available).
    exclude_self
        ``queries`` and ``base`` are the same set: a row is not its own neighbour.
    device
        torch device (``"cpu"``, ``"cuda"``, ``"auto"``).

    Returns
    -------
    distances, indices
        ``(n, k)`` float64 and int64, nearest first; ties go to the smaller base index (exactly so for
        integer inputs; for float inputs a tie at a chunk boundary is resolved by torch).
    """
    import torch

    n, m = len(queries), len(base)
    q2 = queries.reshape(n, -1)
    b2 = base.reshape(m, -1)
    if q2.shape[1] != b2.shape[1]:
        raise DataError(f"knn: query vectors have {q2.shape[1]} values, base vectors {b2.shape[1]}")
    k = min(k, m - (1 if exclude_self else 0))
    if k <= 0 or n == 0:
        return np.zeros((n, 0)), np.zeros((n, 0), dtype=np.int64)
    integer = np.issubdtype(q2.dtype, np.integer) and np.issubdtype(b2.dtype, np.integer)
    dev = resolve_device(device)
    # Integer inputs: every dot product and norm is an integer, exact in float64 while below 2**53; the
    # check below keeps |key| (see the loop) under 2**53 too.
    if integer:
        maxval = float(max(np.abs(q2).max(initial=0), np.abs(b2).max(initial=0)))
        integer = (2 * maxval) ** 2 * q2.shape[1] * m < 2.0**53
    scale = float(m) if integer else 1.0
    b_norm_all = torch.cat(
        [
            (torch.from_numpy(np.ascontiguousarray(b2[s : s + base_chunk])).to(torch.float64) ** 2).sum(1)
            for s in range(0, m, base_chunk)
        ]
    )
    out_d = np.empty((n, k))
    out_i = np.empty((n, k), dtype=np.int64)
    for qs in range(0, n, query_chunk):
        qe = min(n, qs + query_chunk)
        q = torch.from_numpy(np.ascontiguousarray(q2[qs:qe])).to(dev, torch.float64)
        qn = (q * q).sum(1).cpu().numpy()
        keys, idxs = [], []
        for bs in range(0, m, base_chunk):
            be = min(m, bs + base_chunk)
            b = torch.from_numpy(np.ascontiguousarray(b2[bs:be])).to(dev, torch.float64)
            # Ranking key along a row: ||b||^2 - 2 q.b (||q||^2 is the same for the whole row), in one fused
            # GEMM. Integer inputs: scaled by m plus the base index, so that topk breaks ties by the smaller
            # index; all terms are integers below 2**53, so the key is exact.
            offset = b_norm_all[bs:be].to(dev) * scale
            if integer:
                offset = offset + torch.arange(bs, be, device=dev, dtype=torch.float64)
            key = torch.addmm(offset, q, b.T, beta=1.0, alpha=-2.0 * scale)
            if exclude_self:
                rows = torch.arange(qs, qe, device=dev)
                inside = (rows >= bs) & (rows < be)
                key[inside.nonzero().squeeze(1), rows[inside] - bs] = math.inf
            vals, ind = torch.topk(key, min(k, be - bs), dim=1, largest=False, sorted=False)
            keys.append(vals)
            idxs.append(ind + bs)
        vals = torch.cat(keys, 1).cpu().numpy()
        ind = torch.cat(idxs, 1).cpu().numpy()
        if integer:
            order = np.argsort(vals, axis=1, kind="stable")[:, :k]
            ind = np.take_along_axis(ind, order, 1)
            dist = qn[:, None] + (np.take_along_axis(vals, order, 1) - ind) / m
        else:
            order = np.lexsort((ind, vals), axis=1)[:, :k]
            ind = np.take_along_axis(ind, order, 1)
            dist = np.maximum(qn[:, None] + np.take_along_axis(vals, order, 1), 0.0)
        out_d[qs:qe] = dist
        out_i[qs:qe] = ind
    return out_d, out_i


# --------------------------------------------------------------------------------------------- SSIM


def _box_mean(t, win_size: int):
    """Mean over every ``win_size x win_size`` window fully inside the image (the last two axes), from
    running sums: exact for the integer-valued sums of uint8 images, and faster than a pooling kernel."""
    import torch.nn.functional as F

    for dim in (-1, -2):
        c = F.pad(t.cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))
        n = c.shape[dim]
        t = c.narrow(dim, win_size, n - win_size) - c.narrow(dim, 0, n - win_size)
    return t / (win_size * win_size)


def _ssim_stats(images: np.ndarray, win_size: int, dev, batch: int = 2048):
    """Per image: window means and (biased) second moments, float64 ``(N, 3, H', W')``."""
    import torch

    mus, m2s = [], []
    for s in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch])).to(dev, torch.float64)
        x = x.permute(0, 3, 1, 2)
        mus.append(_box_mean(x, win_size))
        m2s.append(_box_mean(x * x, win_size))
    return torch.cat(mus), torch.cat(m2s)


def ssim_index_pairs(
    a: np.ndarray,
    ia: np.ndarray,
    b: np.ndarray,
    ib: np.ndarray,
    *,
    win_size: int = 7,
    data_range: float = 255.0,
    batch: int = 2048,
    device: str | None = "cpu",
) -> np.ndarray:
    """SSIM of the pairs ``(a[ia[j]], b[ib[j]])`` of uint8 ``(N, H, W, 3)`` images.

    Same definition as ``skimage.metrics.structural_similarity(x, y, channel_axis=-1, data_range=255)``
    with its defaults: the mean, over the three channels, of the SSIM map over the windows that lie fully
    inside the image (skimage crops a border of ``(win_size - 1) // 2``), ``win_size x win_size`` uniform
    windows, sample covariance, ``K1 = 0.01``, ``K2 = 0.03``. Per-image window statistics are computed
    once, so each pair costs one cross term.
    """
    import torch

    for name, arr in (("a", a), ("b", b)):
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise DataError(f"ssim: expected (N, H, W, 3) images for {name}, got {arr.shape}")
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"ssim: image shapes differ, {a.shape[1:]} vs {b.shape[1:]}")
    if min(a.shape[1:3]) < win_size:
        raise DataError(
            f"ssim: images of {a.shape[2]}x{a.shape[1]} are smaller than the {win_size}x{win_size} window"
        )
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    dev = resolve_device(device)
    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    ua_all, qa_all = _ssim_stats(a, win_size, dev) if len(ia) else (None, None)
    ub_all, qb_all = (ua_all, qa_all) if b is a else _ssim_stats(b, win_size, dev)
    out = np.empty(len(ia))
    for s in range(0, len(ia), batch):
        ja = torch.from_numpy(ia[s : s + batch]).to(dev)
        jb = torch.from_numpy(ib[s : s + batch]).to(dev)
        x = torch.from_numpy(a[ia[s : s + batch]]).to(dev, torch.float64).permute(0, 3, 1, 2)
        y = torch.from_numpy(b[ib[s : s + batch]]).to(dev, torch.float64).permute(0, 3, 1, 2)
        ux, uy = ua_all[ja], ub_all[jb]
        vx = cov_norm * (qa_all[ja] - ux * ux)
        vy = cov_norm * (qb_all[jb] - uy * uy)
        vxy = cov_norm * (_box_mean(x * y, win_size) - ux * uy)
        s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[s : s + len(ja)] = s_map.mean(dim=(1, 2, 3)).cpu().numpy()
    return out


def ssim_pairs(a: np.ndarray, b: np.ndarray, **kwargs) -> np.ndarray:
    """SSIM of each pair ``(a[i], b[i])`` (see :func:`ssim_index_pairs` for the definition)."""
    if a.shape != b.shape:
        raise DataError(f"ssim: shapes differ, {a.shape} vs {b.shape}")
    idx = np.arange(len(a))
    return ssim_index_pairs(a, idx, b, idx, **kwargs)


def dssim_pairs(a: np.ndarray, b: np.ndarray, **kwargs) -> np.ndarray:
    """Structural dissimilarity ``(1 - SSIM) / 2`` of each pair (0 for identical images)."""
    return (1.0 - ssim_pairs(a, b, **kwargs)) / 2.0


# ---------------------------------------------------------------------------------------------- CNN


def _build_backbone(arch: str, weights: str, seed: int):
    import torch
    import torchvision

    try:
        builder_weights = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as e:
        raise DataError(f"unknown torchvision architecture {arch!r}") from e
    if weights == "random":
        w = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torchvision.models.get_model(arch, weights=None)
    else:
        try:
            w = builder_weights[weights] if weights != "DEFAULT" else builder_weights.DEFAULT
        except KeyError as e:
            raise DataError(
                f"{arch}: unknown weights {weights!r}; choose one of {list(builder_weights.__members__)} or 'random'"
            ) from e
        model = torchvision.models.get_model(arch, weights=None)
        try:
            # The real path: torchvision downloads into $TORCH_HOME/hub/checkpoints when the file is missing.
            state = w.get_state_dict(progress=False)
        except (OSError, RuntimeError) as e:
            raise DataError(
                f"{arch}: cannot load weights {w} from {w.url} ({e}); offline, put the file in "
                "$TORCH_HOME/hub/checkpoints/"
            ) from e
        model.load_state_dict(state)
    # Penultimate layer: drop the classifier head.
    if isinstance(getattr(model, "fc", None), torch.nn.Linear):
        model.fc = torch.nn.Identity()
    elif isinstance(getattr(model, "classifier", None), torch.nn.Sequential):
        model.classifier[-1] = torch.nn.Identity()
    elif isinstance(getattr(model, "classifier", None), torch.nn.Linear):
        model.classifier = torch.nn.Identity()
    elif hasattr(model, "heads"):
        model.heads = torch.nn.Identity()
    else:
        raise DataError(f"{arch}: do not know how to take the penultimate layer of this architecture")
    return model.eval(), w


def cnn_features(
    images: np.ndarray,
    *,
    arch: str = "resnet18",
    weights: str = "DEFAULT",
    input_size: int | None = None,
    device: str | None = "cpu",
    batch_size: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """L2-normalised penultimate-layer features of a torchvision backbone, float32 ``(N, F)``.

    Parameters
    ----------
    images
        uint8 ``(N, H, W, 3)``.
    arch
        A torchvision classification model name (``torchvision.models.list_models()``).
    weights
        ``"DEFAULT"`` or a member of the architecture's weights enum (loaded through torchvision, which
        downloads into ``$TORCH_HOME/hub/checkpoints`` when the file is not there), or ``"random"``: seeded
        random initialisation, no download.
    input_size
        Resize (bilinear) to ``input_size x input_size`` before the network. Default: the weights' crop size
        (224 for ImageNet weights); with random weights the images' own size.
    """
    import torch
    import torch.nn.functional as F

    model, w = _build_backbone(arch, weights, seed)
    if input_size is None and w is not None:
        input_size = int(w.transforms().crop_size[0])
    dev = resolve_device(device)
    model = model.to(dev)
    mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1)
    feats = []
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).to(dev)
            x = x.permute(0, 3, 1, 2).float() / 255.0
            if input_size is not None and tuple(x.shape[-2:]) != (input_size, input_size):
                x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False)
            f = model((x - mean) / std).flatten(1)
            feats.append(F.normalize(f.float(), dim=1).cpu())
    return torch.cat(feats).numpy() if feats else np.zeros((0, 0), np.float32)


# ---------------------------------------------------------------------------------------- neighbours


@dataclass
class NearDuplicateResult:
    """Everything :func:`detect_near_duplicates` found; tables are plain DataFrames."""

    neighbors: pd.DataFrame  # one row per (candidate, pool, metric, rank)
    links: pd.DataFrame  # duplicate links (distance <= threshold)
    decisions: pd.DataFrame  # one row per candidate, in candidate order
    thresholds: dict[str, float]
    params: dict = field(default_factory=dict)

    def summary(self) -> dict:
        d = self.decisions
        return {
            "candidates": int(len(d)),
            "kept": int((d["decision"] == "kept").sum()),
            "excluded": int((d["decision"] == "excluded").sum()),
            "by_reason": {str(r): int(c) for r, c in sorted(d["reason"].value_counts().items())},
            "candidate_candidate_links": int((self.links["pool"] == "candidate").sum())
            if len(self.links)
            else 0,
            "candidate_original_links": int((self.links["pool"] == "original").sum())
            if len(self.links)
            else 0,
            "thresholds": self.thresholds,
            "params": self.params,
        }


def _neighbor_frame(
    pool: str, metric: str, dist: np.ndarray, idx: np.ndarray, ids: Sequence[str]
) -> pd.DataFrame:
    n, k = dist.shape
    return pd.DataFrame(
        {
            "candidate_index": np.repeat(np.arange(n), k),
            "pool": pool,
            "metric": metric,
            "rank": np.tile(np.arange(1, k + 1), n),
            "neighbor_index": idx.ravel(),
            "neighbor_id": np.asarray(ids, dtype=object)[idx.ravel()],
            "distance": dist.ravel(),
        }
    )


def find_neighbors(
    candidates: ImageSet,
    originals: ImageSet,
    *,
    metrics: Sequence[str] = ("l2",),
    k: int = 5,
    shortlist: int = 10,
    device: str | None = "cpu",
    cnn_arch: str = "resnet18",
    cnn_weights: str = "DEFAULT",
    cnn_input_size: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``k`` nearest originals and other candidates of every candidate, per metric.

    Returns a long table: ``candidate_index, candidate_id, pool ("original" | "candidate"), metric, rank
    (1 = nearest), neighbor_index, neighbor_id, distance``. ``dssim`` ranks only the ``shortlist`` nearest
    of each pool under ``l2`` (see the module docstring).
    """
    metrics = _check_metrics(metrics)
    if candidates.images.shape[1:] != originals.images.shape[1:]:
        raise DataError(
            f"{candidates.source}: images are {candidates.images.shape[1:3]}, but {originals.source} has "
            f"{originals.images.shape[1:3]}; pass a fixed size (--size)"
        )
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    pools = {"original": (originals, False), "candidate": (candidates, True)}
    frames = []
    for pool, (base, same) in pools.items():
        if "l2" in metrics or "dssim" in metrics:
            k_l2 = max(k, shortlist) if "dssim" in metrics else k
            d, i = knn(candidates.images, base.images, k_l2, exclude_self=same, device=device)
            if "l2" in metrics:
                frames.append(_neighbor_frame(pool, "l2", d[:, :k], i[:, :k], base.ids))
            if "dssim" in metrics and i.size:
                rows = np.repeat(np.arange(len(candidates)), i.shape[1])
                cols = i.ravel()
                if same:  # candidate pairs are symmetric: compute each unordered pair once
                    pairs, inverse = np.unique(
                        np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], 1),
                        axis=0,
                        return_inverse=True,
                    )
                    ss = ssim_index_pairs(base.images, pairs[:, 0], base.images, pairs[:, 1], device=device)
                    ss = ss[inverse.ravel()]
                else:
                    ss = ssim_index_pairs(candidates.images, rows, base.images, cols, device=device)
                ds = ((1.0 - ss) / 2.0).reshape(i.shape)
                # Re-rank the shortlist by DSSIM; ties by index.
                order = np.lexsort((i, ds), axis=1)[:, :k]
                frames.append(
                    _neighbor_frame(
                        pool,
                        "dssim",
                        np.take_along_axis(ds, order, 1),
                        np.take_along_axis(i, order, 1),
                        base.ids,
                    )
                )
    if "cnn" in metrics:
        kw = dict(arch=cnn_arch, weights=cnn_weights, input_size=cnn_input_size, device=device, seed=seed)
        fc = cnn_features(candidates.images, **kw)
        fo = cnn_features(originals.images, **kw)
        for pool, (feats, same, ids) in {
            "original": (fo, False, originals.ids),
            "candidate": (fc, True, candidates.ids),
        }.items():
            d, i = knn(fc, feats, k, exclude_self=same, device=device)
            frames.append(_neighbor_frame(pool, "cnn", d, i, ids))
    out = pd.concat(frames, ignore_index=True)
    out.insert(1, "candidate_id", np.asarray(candidates.ids, dtype=object)[out["candidate_index"].to_numpy()])
    order = {m: j for j, m in enumerate(METRICS)}
    out = out.sort_values(
        ["candidate_index", "pool", "metric", "rank"],
        key=lambda s: s.map(order) if s.name == "metric" else s,
        kind="stable",
    )
    return out.reset_index(drop=True)


def _check_metrics(metrics: Iterable[str]) -> list[str]:
    metrics = list(dict.fromkeys(metrics))
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise DataError(f"unknown metric(s) {bad}; choose from {list(METRICS)}")
    return [m for m in METRICS if m in metrics]


def resolve_thresholds(
    metrics: Sequence[str], thresholds: Mapping[str, float | None] | None, image_shape: tuple[int, ...]
) -> dict[str, float | None]:
    """Link thresholds for the selected metrics.

    Given values win; otherwise ``l2``: ``DEFAULT_L2_PER_VALUE * H*W*3``, ``dssim``: 0.12, and ``cnn``:
    ``None``. ``None`` means the metric is computed and reported but makes no links: a CNN threshold
    depends on the backbone and its weights, so there is no default; pick one from the review page.
    """
    thresholds = dict(thresholds or {})
    unknown = sorted(set(thresholds) - set(metrics))
    if unknown:
        raise DataError(f"thresholds given for metrics not selected: {unknown} (selected: {list(metrics)})")
    out: dict[str, float | None] = {}
    for m in metrics:
        if m in thresholds:
            t = thresholds[m]
            if t is not None:
                t = float(t)
                if not math.isfinite(t) or t < 0:
                    raise DataError(
                        f"threshold for {m} must be a finite number >= 0 (or none), got {thresholds[m]!r}"
                    )
            out[m] = t
        elif m == "l2":
            out[m] = DEFAULT_L2_PER_VALUE * int(np.prod(image_shape))
        else:
            out[m] = DEFAULT_THRESHOLDS[m]
    return out


# ------------------------------------------------------------------------------------------ decisions


def decide(
    neighbors: pd.DataFrame,
    candidate_ids: Sequence[str],
    original_ids: Sequence[str],
    thresholds: Mapping[str, float | None],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Duplicate links and one decision per candidate (rules in the module docstring).

    Returns
    -------
    decisions
        One row per candidate in candidate order: ``candidate_index, candidate_id, decision ("kept" |
        "excluded"), reason ("unique" | "survivor" | "duplicate_of_original" | "connected_to_original" |
        "duplicate_of_candidate"), duplicate_of, component, component_size``, then per metric the nearest
        original and candidate with their distances (``nearest_original_<m>``, ``dist_original_<m>``,
        ``nearest_candidate_<m>``, ``dist_candidate_<m>``).
    links
        The neighbour rows under threshold (candidate–candidate pairs once, smaller index first).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    nc, no = len(candidate_ids), len(original_ids)
    thr = neighbors["metric"].map({m: (np.nan if t is None else t) for m, t in thresholds.items()})
    linked = neighbors[neighbors["distance"] <= thr].copy()  # NaN (no threshold) never links
    cc = linked["pool"] == "candidate"
    a = linked["candidate_index"].to_numpy().copy()  # copies: to_numpy() may be a view of the frame
    b = linked["neighbor_index"].to_numpy().copy()
    linked.loc[cc, "candidate_index"] = np.minimum(a, b)[cc.to_numpy()]
    linked.loc[cc, "neighbor_index"] = np.maximum(a, b)[cc.to_numpy()]
    linked["candidate_id"] = [candidate_ids[i] for i in linked["candidate_index"]]
    linked["neighbor_id"] = [
        (candidate_ids if p == "candidate" else original_ids)[i]
        for p, i in zip(linked["pool"], linked["neighbor_index"], strict=True)
    ]
    links = (
        linked.drop(columns=["rank"])
        .drop_duplicates(["candidate_index", "pool", "neighbor_index", "metric"])
        .sort_values(["pool", "candidate_index", "neighbor_index", "metric"], kind="stable")
        .reset_index(drop=True)
    )

    # Graph: candidates are nodes 0..nc-1, originals nc..nc+no-1.
    src = links["candidate_index"].to_numpy()
    dst = links["neighbor_index"].to_numpy() + np.where(links["pool"] == "original", nc, 0)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(nc + no, nc + no))
    _, label = connected_components(graph, directed=False)
    # Renumber components by their first node, so the numbers do not depend on scipy's internals.
    first = {}
    for node, lab in enumerate(label):
        first.setdefault(lab, node)
    comp_of = np.array([first[lab] for lab in label])
    comp_ids, comp_number = np.unique(comp_of, return_inverse=True)
    size = np.bincount(comp_number)
    has_original = np.zeros(len(comp_ids), dtype=bool)
    has_original[np.unique(comp_number[nc:])] = True
    survivor = {}  # component -> first candidate (nodes are in candidate order)
    for node in range(nc):
        survivor.setdefault(comp_number[node], node)

    # Per candidate: the nearest directly linked original and the nearest linked candidate.
    primary = [m for m in METRICS if m in thresholds]
    first_metric_rank = {m: j for j, m in enumerate(primary)}
    direct = links.assign(_m=links["metric"].map(first_metric_rank)).sort_values(
        ["_m", "distance", "neighbor_index"], kind="stable"
    )
    direct_orig: dict[int, str] = {}
    for c, nid in zip(
        direct.loc[direct["pool"] == "original", "candidate_index"],
        direct.loc[direct["pool"] == "original", "neighbor_id"],
        strict=True,
    ):
        direct_orig.setdefault(int(c), nid)
    cand_link: dict[int, str] = {}
    dc = direct[direct["pool"] == "candidate"]
    for c, d in zip(dc["candidate_index"], dc["neighbor_index"], strict=True):
        cand_link.setdefault(int(c), candidate_ids[int(d)])
        cand_link.setdefault(int(d), candidate_ids[int(c)])

    decision, reason, dup_of = [], [], []
    for node in range(nc):
        comp = comp_number[node]
        if has_original[comp]:
            decision.append("excluded")
            if node in direct_orig:
                reason.append("duplicate_of_original")
                dup_of.append(direct_orig[node])
            else:
                reason.append("connected_to_original")
                dup_of.append(cand_link.get(node, ""))
        elif size[comp] == 1:
            decision.append("kept")
            reason.append("unique")
            dup_of.append("")
        elif survivor[comp] == node:
            decision.append("kept")
            reason.append("survivor")
            dup_of.append("")
        else:
            decision.append("excluded")
            reason.append("duplicate_of_candidate")
            dup_of.append(candidate_ids[survivor[comp]])
    decisions = pd.DataFrame(
        {
            "candidate_index": np.arange(nc),
            "candidate_id": list(candidate_ids),
            "decision": decision,
            "reason": reason,
            "duplicate_of": dup_of,
            "component": comp_number[:nc],
            "component_size": size[comp_number[:nc]],
        }
    )
    nearest = neighbors[neighbors["rank"] == 1]
    for m in primary:
        for pool in ("original", "candidate"):
            sel = nearest[(nearest["metric"] == m) & (nearest["pool"] == pool)].set_index("candidate_index")
            decisions[f"nearest_{pool}_{m}"] = (
                sel["neighbor_id"].reindex(decisions["candidate_index"]).to_numpy()
            )
            decisions[f"dist_{pool}_{m}"] = sel["distance"].reindex(decisions["candidate_index"]).to_numpy()
    return decisions, links


def detect_near_duplicates(
    candidates: ImageSet,
    originals: ImageSet,
    *,
    metrics: Sequence[str] = ("l2",),
    thresholds: Mapping[str, float | None] | None = None,
    k: int = 5,
    shortlist: int = 10,
    device: str | None = "cpu",
    cnn_arch: str = "resnet18",
    cnn_weights: str = "DEFAULT",
    cnn_input_size: int | None = None,
    seed: int = 0,
) -> NearDuplicateResult:
    """Neighbours, links and decisions for every candidate (see the module docstring for the rules)."""
    metrics = _check_metrics(metrics)
    thr = resolve_thresholds(metrics, thresholds, candidates.images.shape[1:])
    neighbors = find_neighbors(
        candidates,
        originals,
        metrics=metrics,
        k=k,
        shortlist=shortlist,
        device=device,
        cnn_arch=cnn_arch,
        cnn_weights=cnn_weights,
        cnn_input_size=cnn_input_size,
        seed=seed,
    )
    decisions, links = decide(neighbors, candidates.ids, originals.ids, thr)
    params = {
        "metrics": metrics,
        "k": k,
        "shortlist": shortlist if "dssim" in metrics else None,
        "image_size": list(candidates.images.shape[1:3]),
        "cnn": {"arch": cnn_arch, "weights": cnn_weights, "input_size": cnn_input_size, "seed": seed}
        if "cnn" in metrics
        else None,
        "candidates": candidates.source,
        "originals": originals.source,
        "n_candidates": len(candidates),
        "n_originals": len(originals),
    }
    return NearDuplicateResult(neighbors, links, decisions, thr, params)


# --------------------------------------------------------------------------------------------- review


def review_pairs(result: NearDuplicateResult, n: int = 24) -> dict[str, pd.DataFrame]:
    """Pairs worth a look, per section (each sorted by distance under the first selected metric):

    - ``candidate_links``: candidate–candidate duplicate links (the nearest ``n``);
    - ``farthest_linked``: the ``n`` linked candidate–original pairs with the largest distance;
    - ``closest_unlinked``: the ``n`` closest pairs (either pool) that are not links.
    """
    metrics = list(result.thresholds)
    m = metrics[0]
    nb = result.neighbors
    cc = (nb["pool"] == "candidate").to_numpy()
    ci, ni = nb["candidate_index"].to_numpy(), nb["neighbor_index"].to_numpy()
    # One row per pair (candidate pairs once, smaller index first), one distance column per metric.
    pairs = pd.DataFrame(
        {
            "pool": nb["pool"].to_numpy(),
            "_a": np.where(cc, np.minimum(ci, ni), ci),
            "_b": np.where(cc, np.maximum(ci, ni), ni),
            "metric": nb["metric"].to_numpy(),
            "distance": nb["distance"].to_numpy(),
        }
    )
    wide = pairs.pivot_table(index=["pool", "_a", "_b"], columns="metric", values="distance", aggfunc="min")
    wide = wide.reindex(columns=metrics).reset_index()
    wide.columns.name = None
    link_keys = set(
        zip(
            result.links["pool"], result.links["candidate_index"], result.links["neighbor_index"], strict=True
        )
    )
    wide["linked"] = [
        (p, a, b) in link_keys for p, a, b in zip(wide["pool"], wide["_a"], wide["_b"], strict=True)
    ]
    wide["distance"] = wide[m]
    wide = wide.sort_values(["distance", "pool", "_a", "_b"], kind="stable", na_position="last")
    sections = {
        "candidate_links": wide[wide["linked"] & (wide["pool"] == "candidate")].head(n),
        "farthest_linked": wide[wide["linked"] & (wide["pool"] == "original")].tail(n).iloc[::-1],
        "closest_unlinked": wide[~wide["linked"]].head(n),
    }
    return {k: v.assign(metric=m).reset_index(drop=True) for k, v in sections.items()}


def _dist_text(row, metrics: Sequence[str], sep: str) -> str:
    return sep.join(f"{x} = {row[x]:.4g}" for x in metrics if x in row and pd.notna(row[x]))


_SECTION_TITLES = {
    "candidate_links": "Candidate–candidate duplicate links (one survivor per group)",
    "farthest_linked": "Farthest linked candidate–original pairs (check for false alarms)",
    "closest_unlinked": "Closest pairs NOT linked (check for misses)",
}


def _png_b64(img: np.ndarray, scale: int) -> str:
    from PIL import Image

    im = Image.fromarray(img)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = _io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pair_images(row, candidates: ImageSet, originals: ImageSet) -> tuple[np.ndarray, np.ndarray, str, str]:
    a, b = int(row["_a"]), int(row["_b"])
    if row["pool"] == "candidate":
        return candidates.images[a], candidates.images[b], candidates.ids[a], candidates.ids[b]
    return candidates.images[a], originals.images[b], candidates.ids[a], originals.ids[b]


def write_review(
    result: NearDuplicateResult, candidates: ImageSet, originals: ImageSet, out_dir: str | Path, n: int = 24
) -> list[Path]:
    """Write ``review.html`` (self-contained, images inlined) and ``review.png`` (contact sheet)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    sections = review_pairs(result, n)
    scale = max(1, 96 // max(candidates.images.shape[1:3]))
    m = next(iter(result.thresholds))
    thr = result.thresholds[m]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Near-duplicate review</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px;font-size:13px}img{image-rendering:pixelated}.y{color:#b00}.n{color:#070}</style></head><body>",
        f"<h1>Near-duplicate review</h1><p>Candidates: {html.escape(candidates.source)} ({len(candidates)}); "
        f"originals: {html.escape(originals.source)} ({len(originals)}). Sorted by <b>{html.escape(m)}</b> "
        f"(threshold {_fmt(thr)}). Thresholds: {html.escape(str(result.thresholds))}; a pair is linked when it "
        "is under the threshold of any metric.</p>",
    ]
    for key, df in sections.items():
        parts.append(f"<h2>{html.escape(_SECTION_TITLES[key])} — {len(df)} pair(s)</h2>")
        if df.empty:
            parts.append("<p>none</p>")
            continue
        parts.append(
            "<table><tr><th>candidate</th><th>neighbour</th><th>ids</th><th>distance</th><th>link</th></tr>"
        )
        for _, row in df.iterrows():
            ia, ib, na, nb_ = _pair_images(row, candidates, originals)
            parts.append(
                f"<tr><td><img src='data:image/png;base64,{_png_b64(ia, scale)}'></td>"
                f"<td><img src='data:image/png;base64,{_png_b64(ib, scale)}'></td>"
                f"<td>{html.escape(na)}<br>{html.escape(row['pool'])}: {html.escape(nb_)}</td>"
                f"<td>{_dist_text(row, list(result.thresholds), '<br>')}</td>"
                f"<td class='{'y' if row['linked'] else 'n'}'>{'linked' if row['linked'] else 'not linked'}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    html_path = atomic_write_text(out_dir / "review.html", "".join(parts))

    # Contact sheet: one block per section, each pair as candidate | neighbour.
    cols = 6
    nonempty = {k: v for k, v in sections.items() if len(v)}
    rows_per = {k: math.ceil(len(v) / cols) for k, v in nonempty.items()}
    total_rows = max(1, sum(rows_per.values()))
    fig = plt.figure(figsize=(cols * 2.3, 0.5 + total_rows * 1.9 + 0.5 * len(nonempty)))
    if nonempty:
        subfigs = np.atleast_1d(
            fig.subfigures(len(nonempty), 1, height_ratios=[r * 1.9 + 0.5 for r in rows_per.values()])
        )
        for sf, (key, df) in zip(subfigs, nonempty.items(), strict=True):
            sf.suptitle(
                f"{_SECTION_TITLES[key]}: candidate | neighbour, {m} threshold {_fmt(thr)}",
                fontsize=10,
                x=0.01,
                ha="left",
            )
            axes = np.atleast_1d(sf.subplots(rows_per[key], cols)).ravel()
            for ax in axes:
                ax.axis("off")
            for ax, (_, row) in zip(axes, df.iterrows(), strict=False):
                ia, ib, na, nb_ = _pair_images(row, candidates, originals)
                gap = np.full((ia.shape[0], max(1, ia.shape[1] // 8), 3), 255, np.uint8)
                ax.imshow(np.concatenate([ia, gap, ib], 1), interpolation="nearest")
                ax.set_title(
                    f"{_short(na)}\n{row['pool']} {_short(nb_)}\n{_dist_text(row, list(result.thresholds), ', ')}",
                    fontsize=6.5,
                )
    else:
        fig.text(0.5, 0.5, "no pairs to review", ha="center")
    png_path = save_figure(fig, out_dir / "review.png", dpi=110)
    return [html_path, png_path]


def _fmt(t: float | None) -> str:
    return "none" if t is None else f"{t:g}"


def _short(s: str, n: int = 28) -> str:
    return s if len(s) <= n else "…" + s[-(n - 1) :]


# ------------------------------------------------------------------------------------------------ run


def run_near_duplicates(
    original: str | Path,
    candidates: str | Path,
    out_dir: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    k: int = 5,
    shortlist: int = 10,
    size: int | None = None,
    device: str | None = "cpu",
    cnn_arch: str = "resnet18",
    cnn_weights: str = "DEFAULT",
    cnn_input_size: int | None = None,
    seed: int = 0,
    review_n: int = 24,
    image_root: str | Path | None = None,
) -> list[Path]:
    """Load both sets, detect near-duplicates, write ``decisions.csv``, ``links.csv``, ``neighbors.csv``,
    ``summary.json``, ``exclusions.csv`` (excluded ids with reason ``near_duplicate``, for the samplers),
    ``review.html`` and ``review.png`` into ``out_dir``; returns the paths written.

    ``metrics`` None: the paper's protocol (:func:`default_metrics`). ``image_root``: the folder that
    table inputs' paths are relative to (see :func:`load_image_set`)."""
    if metrics is None:
        metrics = default_metrics(cnn_arch, cnn_weights)
    orig = load_image_set(original, size, image_root=image_root)
    cand = load_image_set(candidates, size, image_root=image_root)
    result = detect_near_duplicates(
        cand,
        orig,
        metrics=metrics,
        thresholds=thresholds,
        k=k,
        shortlist=shortlist,
        device=device,
        cnn_arch=cnn_arch,
        cnn_weights=cnn_weights,
        cnn_input_size=cnn_input_size,
        seed=seed,
    )
    out_dir = Path(out_dir)
    written = [
        atomic_write_text(out_dir / "decisions.csv", csv_text(result.decisions)),
        atomic_write_text(out_dir / "links.csv", csv_text(result.links)),
        atomic_write_text(out_dir / "neighbors.csv", csv_text(result.neighbors)),
        atomic_write_json(out_dir / "summary.json", result.summary()),
    ]
    # The excluded candidates in the form the samplers' ``exclusions`` table takes (image_id, reason).
    ex = result.decisions[result.decisions["decision"] == "excluded"]
    exclusions = pd.DataFrame(
        {
            "image_id": ex["candidate_id"],
            "reason": "near_duplicate",
            "detail": ex["reason"],
            "duplicate_of": ex["duplicate_of"],
        }
    )
    written.append(atomic_write_text(out_dir / "exclusions.csv", csv_text(exclusions)))
    written += write_review(result, cand, orig, out_dir, review_n)
    return written
