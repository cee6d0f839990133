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

   Without ``metrics``, the Python functions and the CLI alike use the paper's protocol
   (:func:`default_metrics`): ``l2`` and ``dssim``, plus ``cnn`` when its weights are already cached.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import IMAGE_EXTENSIONS
from ..files import (
    DataError,
    atomic_write_json,
    atomic_write_text,
    csv_text,
    load_npy,
)
from .duplicate_review import review_pairs, write_review
from .image_distances import cnn_features, dssim_pairs, knn, ssim_index_pairs, ssim_pairs

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


# --------------------------------------------------------------------------------------------- SSIM


# ---------------------------------------------------------------------------------------------- CNN


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
    metrics: Sequence[str] | None = None,
    k: int = 5,
    shortlist: int = 10,
    device: str | None = "cpu",
    cnn_arch: str = "resnet18",
    cnn_weights: str = "DEFAULT",
    cnn_input_size: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``k`` nearest originals and other candidates of every candidate, per metric.

    ``metrics`` None: the paper's protocol, as on the command line (:func:`default_metrics`). Returns a long
    table: ``candidate_index, candidate_id, pool ("original" | "candidate"), metric, rank (1 = nearest),
    neighbor_index, neighbor_id, distance``. ``dssim`` ranks only the ``shortlist`` nearest of each pool
    under ``l2`` (see the module docstring).
    """
    metrics = _resolve_metrics(metrics, cnn_arch, cnn_weights)
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


def _resolve_metrics(metrics: Iterable[str] | None, cnn_arch: str, cnn_weights: str) -> list[str]:
    """The metrics asked for, checked and in canonical order; None: the paper's protocol (one default for the
    Python API and the CLI)."""
    return _check_metrics(default_metrics(cnn_arch, cnn_weights) if metrics is None else metrics)


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
    metrics: Sequence[str] | None = None,
    thresholds: Mapping[str, float | None] | None = None,
    k: int = 5,
    shortlist: int = 10,
    device: str | None = "cpu",
    cnn_arch: str = "resnet18",
    cnn_weights: str = "DEFAULT",
    cnn_input_size: int | None = None,
    seed: int = 0,
) -> NearDuplicateResult:
    """Neighbours, links and decisions for every candidate (see the module docstring for the rules).

    ``metrics`` None: the paper's protocol (:func:`default_metrics`: ``l2`` and ``dssim``, plus ``cnn`` when
    its weights are cached), the same default as ``generalization near-duplicates``; ``["l2"]`` asks for
    pixel L2 alone. The metrics used are in ``params["metrics"]``.
    """
    metrics = _resolve_metrics(metrics, cnn_arch, cnn_weights)
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

    ``metrics`` None: the paper's protocol (:func:`default_metrics`, resolved in
    :func:`detect_near_duplicates`). ``image_root``: the folder that
    table inputs' paths are relative to (see :func:`load_image_set`)."""
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
