"""Image distances for near-duplicate detection: exact pixel-L2 k-nearest-neighbour search (:func:`knn`), a
batched SSIM/DSSIM matching scikit-image (:func:`ssim_pairs`, :func:`ssim_index_pairs`, :func:`dssim_pairs`)
and CNN penultimate-layer features (:func:`cnn_features`). Moved out of
:mod:`generalization.sampler.near_duplicates` (which re-exports them) to keep modules short; see that
module's docstring for the definitions and how they are used.
"""

from __future__ import annotations

import math

import numpy as np

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..devices import resolve_device
from ..files import DataError


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
