"""The batch evaluator: many models x many test sets, each test set decoded once per preprocessing.

For every test set, the models are grouped by ``Preprocess.decode_key`` (input size, resize, interpolation);
each group's images are decoded and resized/cropped once into a uint8 array (in memory, or a memory-mapped
file under ``cache_dir`` when larger than ``max_memory_bytes``), and every model of the group then runs over
that array (normalisation is a per-batch affine map, applied per model). Each (model, test set) pair is
written to the store as soon as it finishes (atomically; source ``evaluate``, or ``evaluate-bf16``), so an
interrupt loses at most the pair in progress and a rerun skips finished pairs.

The pieces are separate so they can be sharded (e.g. across ranks): :func:`decode_images` turns a list of
images into uint8 batches, :func:`predict_topk` turns an iterable of ``(row indices, uint8 batch)`` into top-k
rows for one model, and :func:`write_result` stores one pair.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..files import DataError
from ..store.records import PredictionStore, RecordExistsError
from .datasets import ImageSet, load_dataset
from .decode import BadImageError, Preprocess, decode_rgb, normalize, read_image_bytes, resize_crop
from .models import ModelSpec, model_spec
from .scoring import label_space, restricted_topk

__all__ = [
    "EVALUATE_SOURCE",
    "DecodedImages",
    "decode_groups",
    "decode_images",
    "iter_batches",
    "predict_topk",
    "write_result",
    "evaluate",
    "precision_agreement",
    "resolve_device",
    "keep_freed_memory",
]

EVALUATE_SOURCE = "evaluate"
SOURCES = {"fp32": "evaluate", "bf16": "evaluate-bf16"}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda: no CUDA device available")
    return dev


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process instead of handing it back to the kernel.

    A convnet's activations at 224 px are tens of MB per layer; glibc serves blocks that large with fresh
    ``mmap`` calls and unmaps them on free, so every layer of every batch page-faults its output in again
    (measured on 2 cores: a third of the run in the kernel, mobilenet_v3_small 195 -> 285 images/s with this
    setting). This is what PyTorch's CPU tuning guide gets from jemalloc/tcmalloc, done with two ``mallopt``
    calls: no mmap'd blocks, no trimming below 2 GiB of free heap. Peak memory is unchanged; freed memory is
    simply reused instead of being returned.

    Applies to the whole process, once; a no-op (returns False) off glibc or when the environment variable
    ``GENERALIZATION_MALLOC=system`` asks to leave malloc alone.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED
    _MALLOC_TUNED = False
    if os.environ.get("GENERALIZATION_MALLOC", "").lower() == "system" or not sys.platform.startswith(
        "linux"
    ):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only (musl's mallopt does nothing)
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # an int value: a larger one would wrap silently
    libc.mallopt.restype = ctypes.c_int
    m_trim_threshold, m_mmap_max = -1, -4
    _MALLOC_TUNED = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    return _MALLOC_TUNED


_MALLOC_TUNED: bool | None = None


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        disable=enabled is False or (enabled is None and not sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )


# ------------------------------------------------------------------------------------------- decoding


@dataclass
class DecodedImages:
    """uint8 N x 3 x S x S images of one test set for one decode key, plus the rows kept."""

    images: torch.Tensor  # on CPU (or on the GPU when decoded there and it fits)
    keep: np.ndarray  # row indices (into the test set) of the decoded images
    bad: list[str] = field(default_factory=list)  # "path: reason" of skipped images
    seconds: float = 0.0
    cache_file: Path | None = None

    def __len__(self) -> int:
        return len(self.keep)

    def release(self) -> None:
        self.images = torch.empty(0, dtype=torch.uint8)
        if self.cache_file is not None:
            self.cache_file.unlink(missing_ok=True)


class _FileDataset(torch.utils.data.Dataset):
    """Reads one image and (on the CPU) decodes it once and resizes/crops it for every preprocessing.

    Returns ``(index, [tensor per preprocessing] | encoded bytes | error string)``.
    """

    def __init__(self, paths: Sequence[Path], pres: Sequence[Preprocess], decode: bool) -> None:
        self.paths, self.pres, self.decode = list(paths), list(pres), decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            data = read_image_bytes(path)
            if not self.decode:
                return i, data
            img = decode_rgb(data, path)
            return i, [resize_crop(img, pre).contiguous() for pre in self.pres]
        except (BadImageError, DataError) as e:
            return i, str(e)


def _collate(items):
    return items


def _decode_batches(
    dataset: _FileDataset, batch_size: int, num_workers: int, threads: int | None
) -> Iterator[list]:
    """Batches of ``dataset`` items in order: from ``num_workers`` DataLoader processes when > 0, else from a
    pool of ``threads`` threads (default: torch's intra-op thread count).

    Threads are the cheaper choice: the torchvision decoders and the uint8 resize release the GIL, and nothing
    is pickled between processes (measured on 2 cores: 300 photos/s in one thread, 610 in two).
    """
    if num_workers > 0:
        yield from torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
        )
        return
    threads = max(1, threads or torch.get_num_threads())
    if threads == 1:
        for start in range(0, len(dataset), batch_size):
            yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        # one batch ahead: the pool decodes the next batch while this one is copied out
        pending = None
        for start in range(0, len(dataset) + batch_size, batch_size):
            nxt = None
            if start < len(dataset):
                nxt = pool.map(dataset.__getitem__, range(start, min(start + batch_size, len(dataset))))
            if pending is not None:
                yield list(pending)
            pending = nxt


def _decode_on_gpu(items, paths, pres, device) -> list[list[torch.Tensor] | str]:
    """nvJPEG decode of a batch of encoded images (files nvJPEG refuses go through the CPU decoder)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list = [None] * len(items)
    jpeg = [
        k
        for k, (_, d) in enumerate(items)
        if not isinstance(d, str) and bytes(d[:3].tolist()) == b"\xff\xd8\xff"
    ]
    if jpeg:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg([items[k][1] for k in jpeg], mode=ImageReadMode.RGB, device=device)
            for k, img in zip(jpeg, decoded, strict=True):
                out[k] = img
        except RuntimeError:
            pass  # decode them one by one below
    for k, (i, d) in enumerate(items):
        if isinstance(d, str):
            out[k] = d
        elif out[k] is None:
            try:
                out[k] = decode_rgb(d, paths[i], device)
            except BadImageError as e:
                out[k] = str(e)
    return [o if isinstance(o, str) else [resize_crop(o, pre) for pre in pres] for o in out]


def decode_groups(
    ds: ImageSet,
    pres: Sequence[Preprocess],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    decode_threads: int | None = None,
    skip_bad: bool = False,
    max_memory_bytes: int = 4 << 30,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> dict[tuple, DecodedImages]:
    """Decode every image of ``ds`` once, and resize/centre-crop it for each distinct ``decode_key`` of ``pres``.

    Returns ``{decode_key: DecodedImages}``. A bad image raises :class:`~generalization.evaluator.decode.BadImageError`
    naming it, unless ``skip_bad``: then it is left out and listed in ``DecodedImages.bad``. Files are read and
    decoded by ``num_workers`` DataLoader processes when > 0, else by ``decode_threads`` threads (default:
    torch's intra-op thread count). When the uint8 arrays together exceed ``max_memory_bytes`` they go to
    memory-mapped files in ``cache_dir`` (deleted by :meth:`DecodedImages.release`).
    """
    device = torch.device(device)
    t0 = time.perf_counter()
    uniq: dict[tuple, Preprocess] = {}
    for pre in pres:
        uniq.setdefault(pre.decode_key, pre)
    n = len(ds)
    if ds.pixels is not None:  # already decoded arrays (CIFAR): a view, resized only if a model asks for it
        out = {}
        base = torch.from_numpy(ds.pixels).permute(0, 3, 1, 2)
        for key, pre in uniq.items():
            images = resize_crop(base.contiguous(), pre) if pre.resize_size is not None else base
            if images.shape[-2:] != (pre.input_size, pre.input_size):
                raise DataError(
                    f"{ds.name}: images are {tuple(images.shape[-2:])}, the model needs "
                    f"{pre.input_size} x {pre.input_size}"
                )
            out[key] = DecodedImages(images, np.arange(n), [], time.perf_counter() - t0)
        return out

    on_gpu = device.type == "cuda"
    total = sum(n * 3 * p.input_size**2 for p in uniq.values())
    bufs: dict[tuple, torch.Tensor] = {}
    files: dict[tuple, Path] = {}
    for key, pre in uniq.items():
        s = pre.input_size
        if total <= max_memory_bytes:
            # channels-last (N x S x S x 3 in memory), the layout the models take: cheaper to normalise
            bufs[key] = torch.empty(
                (n, 3, s, s),
                dtype=torch.uint8,
                device=device if on_gpu else "cpu",
                memory_format=torch.channels_last,
            )
        else:
            cache_root = Path(cache_dir or ".")
            cache_root.mkdir(parents=True, exist_ok=True)
            files[key] = (
                cache_root / f".decode-{ds.name}-{s}-{pre.resize_size}-{pre.interpolation}-{os.getpid()}.npy"
            )
            mm = np.lib.format.open_memmap(files[key], mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
            bufs[key] = torch.from_numpy(mm).permute(0, 3, 1, 2)  # a channels-last view
    keys = list(uniq)
    ok = np.zeros(n, dtype=bool)
    bad: list[str] = []
    loader = _decode_batches(
        _FileDataset(ds.paths, list(uniq.values()), decode=not on_gpu),
        batch_size,
        num_workers,
        decode_threads,
    )
    bar = _progress(n, f"decode {ds.name} ({len(keys)} size(s))", progress)
    try:
        for items in loader:
            imgs = (
                _decode_on_gpu(items, ds.paths, list(uniq.values()), device)
                if on_gpu
                else [d for _, d in items]
            )
            for (i, _), per_key in zip(items, imgs, strict=True):
                if isinstance(per_key, str):
                    if not skip_bad:
                        raise BadImageError(per_key + " (use --skip-bad-images to skip and count such files)")
                    bad.append(per_key)
                    continue
                for key, img in zip(keys, per_key, strict=True):
                    bufs[key][i] = img.to(bufs[key].device)
                ok[i] = True
            bar.update(len(items))
    except BaseException:
        bufs.clear()
        for f in files.values():
            f.unlink(missing_ok=True)
        raise
    finally:
        loader.close()
        bar.close()
    keep = np.flatnonzero(ok)
    seconds = time.perf_counter() - t0
    sel = None if len(keep) == n else torch.from_numpy(keep)
    return {
        key: DecodedImages(
            buf if sel is None else buf[sel.to(buf.device)], keep, list(bad), seconds, files.get(key)
        )
        for key, buf in bufs.items()
    }


def decode_images(ds: ImageSet, pre: Preprocess, **kwargs) -> DecodedImages:
    """:func:`decode_groups` for one preprocessing."""
    return decode_groups(ds, [pre], **kwargs)[pre.decode_key]


def iter_batches(decoded: DecodedImages, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(row positions within decoded, uint8 batch)`` in order."""
    for start in range(0, len(decoded), batch_size):
        stop = min(start + batch_size, len(decoded))
        yield np.arange(start, stop), decoded.images[start:stop]


# ----------------------------------------------------------------------------------------- prediction


def predict_topk(
    model: nn.Module,
    batches: Iterable[tuple[np.ndarray, torch.Tensor]],
    pre: Preprocess,
    n: int,
    *,
    num_classes: int,
    model_name: str = "model",
    test_set: str = "test set",
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    k: int = 5,
    progress: bool | None = None,
) -> np.ndarray:
    """Top-``k`` class indices (best first) of ``model`` for every row of ``batches``; an ``n x k`` int array.

    ``batches`` yields ``(row indices, uint8 B x 3 x S x S)``; rows not yielded stay -1 (a shard). The model's
    output size must equal ``num_classes``.
    """
    device = torch.device(device)
    if precision not in SOURCES:
        raise ValueError(f"precision must be one of {list(SOURCES)}, got {precision!r}")
    out = np.full((n, k), -1, dtype=np.int64)
    groups = label_space(test_set)  # ImageNet-A/-R, ObjectNet: argmax restricted to their classes
    bar = _progress(n, f"{model_name} on {test_set}", progress)
    buf = None  # one float buffer reused by every batch
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    try:
        with torch.inference_mode(), autocast:
            for rows, batch in batches:
                # channels-last: about 2x faster for these convnets on CPU (oneDNN) and for tensor cores
                x = normalize(batch.to(device, non_blocking=True), pre, out=buf)  # channels-last
                buf = x if buf is None or x.shape[0] > buf.shape[0] else buf
                logits = model(x)
                if logits.ndim != 2 or logits.shape[1] != num_classes:
                    raise DataError(
                        f"{model_name}: outputs {tuple(logits.shape[1:])} scores per image, but {test_set} "
                        f"has {num_classes} classes (a model for another label space?)"
                    )
                if groups is None:
                    out[rows] = logits.float().topk(min(k, num_classes), dim=1).indices.cpu().numpy()
                else:  # a test set on a subset of the model's classes (scoring.py)
                    top = restricted_topk(logits, groups, k).cpu().numpy()
                    out[rows, : top.shape[1]] = top
                bar.update(len(rows))
    finally:
        bar.close()
    return out


def write_result(
    store: PredictionStore,
    *,
    model: str,
    ds: ImageSet,
    keep: np.ndarray,
    topk: np.ndarray,
    meta: dict[str, Any],
    precision: str = "fp32",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Store one (model, test set) pair atomically; returns its accuracy row.

    A record already there with other predictions (a concurrent run on other hardware) is kept, with a warning.
    """
    source = SOURCES[precision]
    try:
        rec = store.put(
            source=source,
            model=model,
            test_set=ds.name,
            predictions=topk[keep],
            meta=meta,
            overwrite=overwrite,
        )
    except RecordExistsError as e:
        warnings.warn(f"kept the existing record: {e}", stacklevel=2)
        rec = store.get(source, model, ds.name)
    return {
        "source": source,
        "model": model,
        "test_set": ds.name,
        "n": rec.n,
        "top1_correct": rec.top1_correct,
        "top1": 100.0 * rec.top1_correct / rec.n,
        "top5": None if rec.top5_correct is None else 100.0 * rec.top5_correct / rec.n,
        "images_per_s": meta.get("images_per_s"),
        "wall_s": meta.get("wall_s"),
        "published_top1": meta.get("published_top1"),
        "flag": meta.get("flag", ""),
    }


def _store_labels(store: PredictionStore, ds: ImageSet, keep: np.ndarray) -> None:
    ids = None if ds.image_ids is None else [ds.image_ids[i] for i in keep]
    try:
        store.put_labels(
            ds.name, ds.labels[keep], num_classes=ds.num_classes, image_ids=ids, source=EVALUATE_SOURCE
        )
    except DataError as e:
        raise DataError(
            f"{e}. This copy of {ds.name} ({len(keep):,} images, {ds.order}, {ds.root}) differs from "
            "the one already in the store: use another --out, or the same images in the same order "
            "(for ImageNet sets pass --release so the order is the release's)"
        ) from None


# ------------------------------------------------------------------------------------------- evaluate


def evaluate(
    models: Sequence[str | ModelSpec],
    datasets: Sequence[str | ImageSet],
    *,
    out: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 64,
    precision: str = "fp32",
    num_workers: int = 0,
    decode_threads: int | None = None,
    skip_bad_images: bool = False,
    strict_count: bool = False,
    release: str | os.PathLike | None = None,
    max_memory_bytes: int = 4 << 30,
    overwrite: bool = False,
    progress: bool | None = None,
    log=print,
) -> pd.DataFrame:
    """Evaluate every model on every test set and write the results to the store at ``out``.

    Parameters
    ----------
    models : names (see :mod:`generalization.evaluator.models`) or :class:`~generalization.evaluator.models.ModelSpec`
    datasets : test-set names (loaded from ``data_root``) or loaded :class:`~generalization.evaluator.datasets.ImageSet`
    out : path
        The prediction store's root.
    precision : {"fp32", "bf16", "both"}
        fp32 (default, reproducible) is stored under source ``evaluate``, bf16 under ``evaluate-bf16``; "both"
        runs each model twice (see :func:`precision_agreement`).
    skip_bad_images : bool
        Leave out (and count) unreadable images instead of failing; the test set is then stored as the subset.
    strict_count : bool
        Fail when a test set's image count differs from the published one (default: warn and flag).
    overwrite : bool
        Recompute pairs already in the store.

    Returns
    -------
    DataFrame
        One row per (model, test set, precision): counts, top-1/top-5 %, images/s, flags; pairs skipped
        because they were already stored have ``skipped=True``.
    """
    store = PredictionStore(out)
    dev = resolve_device(device)
    keep_freed_memory()  # CPU activations (and decode buffers) are allocated afresh for every batch
    precisions = ["fp32", "bf16"] if precision == "both" else [precision]
    for p in precisions:
        if p not in SOURCES:
            raise DataError(f"--precision must be fp32, bf16 or both, got {precision!r}")
    specs = [m if isinstance(m, ModelSpec) else model_spec(m) for m in models]
    rows: list[dict[str, Any]] = []
    for d in datasets:
        ds = (
            d
            if isinstance(d, ImageSet)
            else load_dataset(d, _need(data_root), release=release, strict_count=strict_count)
        )
        if not skip_bad_images:  # check the copy against the store before any work (and on a no-op rerun)
            _store_labels(store, ds, np.arange(len(ds)))
        compatible = [s for s in specs if s.num_classes == ds.num_classes]
        for s in specs:
            if s.num_classes != ds.num_classes:
                raise DataError(
                    f"{s.name} predicts {s.num_classes} classes but {ds.name} has {ds.num_classes}; "
                    "evaluate it on a test set with its label space"
                )
        pending = [
            (s, p)
            for s in compatible
            for p in precisions
            if overwrite or not store.has(SOURCES[p], s.name, ds.name)
        ]
        rows += [
            skipped_row(store, p, s.name, ds.name)
            for s in compatible
            for p in precisions
            if (s, p) not in pending
        ]
        if not pending:
            log(f"{ds.name}: all {len(compatible) * len(precisions)} pairs already in {out}; nothing to do")
            continue
        groups = group_by_decode(pending)
        # every image is decoded once; each group gets its own resized/cropped uint8 copy
        decoded_all = decode_groups(
            ds,
            [m[0][0].preprocess for m in groups.values()],
            device=dev,
            batch_size=batch_size,
            num_workers=num_workers,
            decode_threads=decode_threads,
            skip_bad=skip_bad_images,
            max_memory_bytes=max_memory_bytes,
            cache_dir=Path(out) / ".cache",
            progress=progress,
        )
        first = next(iter(decoded_all.values()))
        flags = list(ds.flags)
        if first.bad:
            flags.append(f"{len(first.bad)} unreadable image(s) skipped")
            log(f"{ds.name}: skipped {len(first.bad)} unreadable image(s), e.g. {first.bad[0]}")
        if skip_bad_images:
            _store_labels(store, ds, first.keep)
        log(
            f"{ds.name}: decoded {len(first):,} images once for {len(groups)} preprocessing(s) in "
            f"{first.seconds:.1f} s"
        )
        try:
            for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
                for s, p in members:
                    rows.append(
                        _run_pair(
                            store,
                            s,
                            p,
                            ds,
                            decoded_all[key],
                            dev,
                            batch_size,
                            flags,
                            progress,
                            log,
                            overwrite,
                        )
                    )
                decoded_all[key].release()
        finally:
            for d in decoded_all.values():
                d.release()
    return pd.DataFrame(rows)


def skipped_row(store: PredictionStore, precision: str, model: str, test_set: str) -> dict[str, Any]:
    """The result row of a pair already in the store (not recomputed)."""
    rec = store.get(SOURCES[precision], model, test_set)
    return {
        "source": SOURCES[precision],
        "model": model,
        "test_set": test_set,
        "n": rec.n,
        "top1_correct": rec.top1_correct,
        "top1": 100.0 * rec.top1_correct / rec.n,
        "skipped": True,
    }


def group_by_decode(pairs: Iterable[tuple[ModelSpec, str]]) -> dict[tuple, list[tuple[ModelSpec, str]]]:
    """``(model, precision)`` pairs grouped by the decoded copy they share (``Preprocess.decode_key``)."""
    groups: dict[tuple, list[tuple[ModelSpec, str]]] = {}
    for spec, precision in pairs:
        groups.setdefault(spec.preprocess.decode_key, []).append((spec, precision))
    return groups


def _need(data_root):
    if data_root is None:
        raise DataError("--data-root is required to load a test set by name")
    return data_root


def _run_pair(
    store,
    spec: ModelSpec,
    precision: str,
    ds: ImageSet,
    decoded: DecodedImages,
    dev: torch.device,
    batch_size: int,
    flags: list[str],
    progress,
    log,
    overwrite: bool = False,
) -> dict[str, Any]:
    model = spec.build().eval().to(dev, memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    topk = predict_topk(
        model,
        iter_batches(decoded, batch_size),
        spec.preprocess,
        len(decoded),
        num_classes=ds.num_classes,
        model_name=spec.name,
        test_set=ds.name,
        device=dev,
        precision=precision,
        progress=progress,
    )
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - t0
    full = np.full((len(ds), topk.shape[1]), -1, dtype=np.int64)
    full[decoded.keep] = topk
    meta: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "images_per_s": round(len(decoded) / wall, 1) if wall > 0 else None,
        "decode_s_shared": round(decoded.seconds, 3),
        "device": _device_name(dev),
        "precision": precision,
        "batch_size": batch_size,
        "preprocessing": spec.preprocess.to_dict(),
        "weights": spec.weights,
        "published_top1": spec.published_top1,
        "test_set_copy": ds.describe(),
        "torch": torch.__version__,
    }
    if flags:
        meta["flag"] = "; ".join(flags)
    if decoded.bad:
        meta["skipped_images"] = decoded.bad[:100]
    row = write_result(
        store,
        model=spec.name,
        ds=ds,
        keep=decoded.keep,
        topk=full,
        meta=meta,
        precision=precision,
        overwrite=overwrite,
    )
    pub = f" (published {spec.published_top1:.2f})" if spec.published_top1 is not None else ""
    log(
        f"{spec.name} on {ds.name} [{precision}]: top-1 {row['top1']:.2f} %{pub}, {meta['images_per_s']} images/s"
        + (f"  [flag: {meta['flag']}]" if flags else "")
    )
    del model
    return row


def precision_agreement(
    store: str | os.PathLike | PredictionStore, test_set: str | None = None
) -> pd.DataFrame:
    """Top-1 agreement between the fp32 (``evaluate``) and bf16 (``evaluate-bf16``) records of each model."""
    store = store if isinstance(store, PredictionStore) else PredictionStore(store)
    recs = {(r.source, r.model, r.test_set) for r in store.records()}
    rows = []
    for source, model, ts in sorted(recs):
        if (
            source != SOURCES["fp32"]
            or (SOURCES["bf16"], model, ts) not in recs
            or (test_set and ts != test_set)
        ):
            continue
        a = store.predictions(SOURCES["fp32"], model, ts)
        b = store.predictions(SOURCES["bf16"], model, ts)
        fa, fb = store.get(SOURCES["fp32"], model, ts), store.get(SOURCES["bf16"], model, ts)
        rows.append(
            {
                "model": model,
                "test_set": ts,
                "n": len(a),
                "top1_agreement": float((a[:, 0] == b[:, 0]).mean()),
                "top1_fp32": 100.0 * fa.top1_correct / fa.n,
                "top1_bf16": 100.0 * fb.top1_correct / fb.n,
            }
        )
    return pd.DataFrame(rows, columns=["model", "test_set", "n", "top1_agreement", "top1_fp32", "top1_bf16"])


def clear_cache(out: str | os.PathLike) -> None:
    """Remove decode caches left by a killed run."""
    shutil.rmtree(Path(out) / ".cache", ignore_errors=True)
